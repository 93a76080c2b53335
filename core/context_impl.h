/* Private layout of ct_context, shared by the files of core/. */
#ifndef COTANGENT_CONTEXT_IMPL_H
#define COTANGENT_CONTEXT_IMPL_H

#include "cotangent/core.h"

#define CT_ERRMSG_CAP 4096

struct ct_context {
  ct_allocator alloc;
  int errcode;
  char errmsg[CT_ERRMSG_CAP]; /* fixed: recording an error never allocates */
  ct_log_level log_level;
  ct_log_fn log_fn;
  void *log_ud;
  char *cache_dir;
};

extern const ct_allocator ct_system_allocator_;

#endif
