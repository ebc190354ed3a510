#include "runner/config.hpp"

namespace fedflow {

sched::Limits sched_limits(const plan::Resources& r) {
    sched::Limits l;
    l.cpu_utilization = r.cpu_utilization;
    l.memory_utilization = r.memory_utilization;
    l.gpu_memory_utilization = r.gpu_memory_utilization;
    l.memory_reserve = r.memory_reserve;
    l.gpu_memory_reserve = r.gpu_memory_reserve;
    l.use_gpus = r.use_gpus;
    l.gpus = r.gpus;
    return l;
}

sched::Policy sched_policy(const plan::Scheduler& s) {
    sched::Policy p;
    p.max_processes = s.max_processes;
    p.max_waiting = s.max_waiting;
    switch (s.gpu_order) {
    case plan::GpuOrder::pci: p.gpu_order = sched::GpuOrder::pci; break;
    case plan::GpuOrder::total_memory: p.gpu_order = sched::GpuOrder::total_memory; break;
    case plan::GpuOrder::free_memory: p.gpu_order = sched::GpuOrder::free_memory; break;
    }
    return p;
}

notify::Config notify_config(const plan::Notify& n) {
    notify::Config c;
    c.command = n.command;
    if (n.smtp) {
        const plan::Notify::Smtp& m = *n.smtp;
        c.smtp = notify::Config::Smtp{m.server, m.port, m.security, m.from, m.to, m.user, m.password_env, m.subject};
    }
    c.on_group = n.on_group;
    c.on_run = n.on_run;
    return c;
}

}  // namespace fedflow
