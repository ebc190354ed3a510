// config.hpp: the plan, translated into the configuration of each part
// below the runner. The scheduler and notify depend on common/ only; they
// never see a plan, so this is the one place that knows both vocabularies.
#pragma once

#include "notify/notify.hpp"
#include "plan/plan.hpp"
#include "sched/config.hpp"

namespace fedflow {

sched::Limits sched_limits(const plan::Resources& r);
sched::Policy sched_policy(const plan::Scheduler& s);
notify::Config notify_config(const plan::Notify& n);

}  // namespace fedflow
