/* Status codes in words. */
#include "hyperad.h"

const char *ad_strerror(ad_status s)
{
    switch (s) {
    case AD_OK:        return "success";
    case AD_ENOMEM:    return "out of memory";
    case AD_EINVAL:    return "invalid argument";
    case AD_ESTATE:    return "operation not valid in the current state";
    case AD_ERETAPE:   return "a recorded comparison changes at this point: record the tape again";
    case AD_EDOMAIN:   return "a value or derivative is not finite (argument outside the domain)";
    case AD_ELIMIT:    return "size limit exceeded";
    case AD_EIO:       return "input/output error";
    case AD_EFORMAT:   return "malformed input";
    case AD_ECALLBACK: return "a user callback failed or asked to stop";
    }
    return "unknown status code";
}
