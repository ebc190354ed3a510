/* Injects: a plugin with a valid info section but no fedflow_plugin_enum
 * symbol. The host must refuse it as bad input, not crash. */
#include <fedflow/abi.h>

FEDFLOW_PLUGIN_INFO(fault_no_entry_info, "fault_no_entry");

/* Exported, but under the wrong name. */
__attribute__((visibility("default"))) int32_t fedflow_plugin_enumerate(uint32_t index) { return index == 0 ? 1 : 0; }
