/* Cotangent: differentiable ODE/PDE and implicit solvers.
 * The umbrella header; each module's API is in include/cotangent/<module>.h. */
#ifndef COTANGENT_H
#define COTANGENT_H

#include "cotangent/core.h"
#include "cotangent/ad.h"
#include "cotangent/gpu.h"
#include "cotangent/ode.h"
#include "cotangent/dae.h"
#include "cotangent/sensitivity.h"
#include "cotangent/adjoint.h"
#include "cotangent/linsolve.h"
#include "cotangent/nlsolve.h"
#include "cotangent/implicit.h"

#endif
