/* An outside program using an installed Cotangent: creates a context,
 * records and reads back an error, prints the build information. */
#include <stdio.h>
#include <string.h>

#include <cotangent.h>

static int fails(ct_context *ctx) {
  return CT_ERROR(ctx, CT_ERR_ARG, "deliberate failure %d", 42);
}

int main(void) {
  ct_context *ctx = ct_context_new(NULL);
  if (!ctx) return 1;
  if (fails(ctx) != CT_ERR_ARG || !strstr(ct_errmsg(ctx), "deliberate failure 42")) {
    fprintf(stderr, "error reporting broken: %s\n", ct_errmsg(ctx));
    return 1;
  }
  char info[2048];
  if (ct_build_info(ctx, info, sizeof info) != CT_OK) return 1;
  printf("consumer ok, linked against:\n%s", info);
  ct_context_free(ctx);
  return 0;
}
