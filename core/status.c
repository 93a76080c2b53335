/* Status-code messages, generated from CT_STATUS_LIST. */
#include "cotangent/core.h"

const char *ct_status_str(int status) {
  switch (status) {
#define CT_STATUS_MESSAGE_(name, value, message) \
  case value:                                    \
    return message;
    CT_STATUS_LIST(CT_STATUS_MESSAGE_)
#undef CT_STATUS_MESSAGE_
  }
  return "unknown status";
}

const char *ct_status_name(int status) {
  switch (status) {
#define CT_STATUS_NAME_(name, value, message) \
  case value:                                 \
    return #name;
    CT_STATUS_LIST(CT_STATUS_NAME_)
#undef CT_STATUS_NAME_
  }
  return "CT_UNKNOWN";
}
