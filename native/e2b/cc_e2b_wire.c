/* cc_e2b_wire: transport-free wire code of the E2B client (skeleton). */
#include "cc_e2b.h"
