/* Links the C that `cotangent codegen` wrote for examples/config/
 * lotka_volterra.yaml and checks its numbers against hand-written ones:
 * f = (a x - b x y, d x y - c y), the sparse Jacobian df/dy (CSC), a JVP and
 * a VJP. Exits 0 when every value matches. */
#include <math.h>
#include <stdio.h>

#include "lv.h"

static int failures;

/* Counts a mismatch beyond 1e-13 (relative to max(1, |want|)). */
static void expect(const char *what, double got, double want) {
  if (fabs(got - want) > 1e-13 * (fabs(want) > 1 ? fabs(want) : 1)) {
    printf("%s = %.17g, expected %.17g\n", what, got, want);
    failures++;
  }
}

int main(void) {
  double t = 0.0, y[2] = {1.2, 0.7}, p[4] = {1.5, 1.0, 3.0, 1.0};
  double x = y[0], v = y[1], a = p[0], b = p[1], c = p[2], d = p[3];
  double work[256], f[2], jac[4], df[2], bar_y[2], bar_p[4];
  const double *in[3] = {&t, y, p};
  double *out[1] = {f};
  if (lotka_volterra_f_work_size() > 256 || lotka_volterra_jac_work_size() > 256 ||
      lotka_volterra_jvp_work_size() > 256 || lotka_volterra_vjp_work_size() > 256)
    return 2;
  lotka_volterra_f(in, out, work);
  expect("f[0]", f[0], a * x - b * x * v);
  expect("f[1]", f[1], d * x * v - c * v);
  double *jout[1] = {jac};
  lotka_volterra_jac(in, jout, work);
  double J[2][2] = {{a - b * v, -b * x}, {d * v, d * x - c}}; /* J[row][col] */
  for (size_t col = 0; col < 2; col++)
    for (size_t q = lotka_volterra_jac_colptr[col]; q < lotka_volterra_jac_colptr[col + 1]; q++)
      expect("jac", jac[q], J[lotka_volterra_jac_rowind[q]][col]);
  double dy[2] = {0.3, -0.2}, dp[4] = {0.1, 0.0, 0.0, -0.5};
  const double *jin[5] = {&t, y, p, dy, dp};
  double *jvp_out[2] = {f, df};
  lotka_volterra_jvp(jin, jvp_out, work);
  expect("jvp[0]", df[0], J[0][0] * dy[0] + J[0][1] * dy[1] + x * dp[0]);
  expect("jvp[1]", df[1], J[1][0] * dy[0] + J[1][1] * dy[1] + x * v * dp[3]);
  double w[2] = {2.0, -1.0};
  const double *vin[4] = {&t, y, p, w};
  double *vjp_out[3] = {f, bar_y, bar_p};
  lotka_volterra_vjp(vin, vjp_out, work);
  expect("vjp_y[0]", bar_y[0], w[0] * J[0][0] + w[1] * J[1][0]);
  expect("vjp_y[1]", bar_y[1], w[0] * J[0][1] + w[1] * J[1][1]);
  expect("vjp_p[0]", bar_p[0], w[0] * x);
  expect("vjp_p[1]", bar_p[1], -w[0] * x * v);
  expect("vjp_p[2]", bar_p[2], -w[1] * v);
  expect("vjp_p[3]", bar_p[3], w[1] * x * v);
  if (!failures) printf("generated code: f, jac, jvp, vjp match\n");
  return failures ? 1 : 0;
}
