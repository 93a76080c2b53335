/* Result files: atomic writes (temporary file, fsync, rename), mkdir -p and
 * locale-independent number formatting. */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "config_internal.h"

/* The temporary file ct_write_atomic writes into: "<path>.tmp-XXXXXX" (the
 * same folder, so that rename is atomic). NULL with CT_ERR_NOMEM set. */
static char *temp_template(ct_context *ctx, const char *path) {
  static const char suffix[] = ".tmp-XXXXXX";
  size_t len = strlen(path);
  char *tmpl = ct_alloc(ctx, len + sizeof suffix);
  if (!tmpl) return NULL;
  memcpy(tmpl, path, len);
  memcpy(tmpl + len, suffix, sizeof suffix);
  return tmpl;
}

/* The permissions the new file gets: those of the file it replaces, or
 * rw-r--r-- for a new file (mkstemp creates it rw-------). */
static mode_t target_mode(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) return st.st_mode & 07777;
  return 0644;
}

/* Flushes f's data to the disk and closes it; 0 or the errno of the first
 * failure (f is closed either way). */
static int flush_sync_close(FILE *f) {
  int err = 0;
  if (fflush(f) != 0 || ferror(f)) err = errno ? errno : EIO;
  if (!err && fsync(fileno(f)) != 0) err = errno;
  if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
  return err;
}

/* Makes the rename itself durable: fsync of the folder that holds `path`
 * (best effort: some file systems refuse it). */
static void sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[4096];
  if (!slash) {
    strcpy(dir, ".");
  } else {
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1; /* "/file" */
    if (n >= sizeof dir) return;
    memcpy(dir, path, n);
    dir[n] = '\0';
  }
  int fd = open(dir, O_RDONLY);
  if (fd < 0) return;
  (void)fsync(fd);
  close(fd);
}

int ct_write_atomic(ct_context *ctx, const char *path,
                    int (*emit)(FILE *f, void *ud), void *ud) {
  if (!path || !*path || !emit)
    return CT_ERROR(ctx, CT_ERR_ARG, "ct_write_atomic: path and emit are required");
  char *tmp = temp_template(ctx, path);
  if (!tmp) return CT_ERR_NOMEM;
  mode_t mode = target_mode(path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int err = errno;
    ct_free(ctx, tmp);
    return CT_ERROR(ctx, CT_ERR_IO, "cannot write '%s': %s", path, strerror(err));
  }
  (void)fchmod(fd, mode);
  FILE *f = fdopen(fd, "w");
  if (!f) {
    int err = errno;
    close(fd);
    unlink(tmp);
    ct_free(ctx, tmp);
    return CT_ERROR(ctx, CT_ERR_IO, "cannot write '%s': %s", path, strerror(err));
  }
  errno = 0;
  int status = emit(f, ud);
  int err = flush_sync_close(f);
  if (status == CT_OK && err == 0 && rename(tmp, path) != 0) err = errno;
  if (status != CT_OK || err != 0) {
    unlink(tmp);
    ct_free(ctx, tmp);
    if (status != CT_OK)
      return CT_ERROR(ctx, status < 0 ? status : CT_ERR_IO,
                      "'%s' not written: producing its contents failed (%s); "
                      "the previous file, if any, is unchanged",
                      path, ct_status_name(status));
    return CT_ERROR(ctx, CT_ERR_IO, "cannot write '%s': %s", path, strerror(err));
  }
  ct_free(ctx, tmp);
  sync_parent_dir(path);
  return CT_OK;
}

/* Creates one folder unless a folder of that name exists: 0 or errno. */
static int make_one_dir(const char *dir) {
  if (mkdir(dir, 0777) == 0) return 0;
  int err = errno;
  struct stat st;
  if (err == EEXIST) return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  return err;
}

int ct_make_dirs(ct_context *ctx, const char *path) {
  if (!path || !*path) return CT_ERROR(ctx, CT_ERR_ARG, "ct_make_dirs: empty folder name");
  char *dir = ct_strdup(ctx, path);
  if (!dir) return CT_ERR_NOMEM;
  int err = 0;
  for (char *p = dir + 1; !err; p++) {
    if (*p != '/' && *p != '\0') continue;
    char saved = *p;
    *p = '\0';
    if (p[-1] != '/') err = make_one_dir(dir);
    *p = saved;
    if (saved == '\0') break;
  }
  if (err) {
    int status = CT_ERROR(ctx, CT_ERR_IO, "cannot create the folder '%s': %s", path,
                          strerror(err));
    ct_free(ctx, dir);
    return status;
  }
  ct_free(ctx, dir);
  return CT_OK;
}

void ct_fmt_num(char *buf, size_t size, const char *fmt, double v) {
  if (!buf || size == 0) return;
  snprintf(buf, size, fmt, v);
  const char *point = localeconv()->decimal_point;
  size_t plen = point ? strlen(point) : 0;
  if (plen == 0 || (plen == 1 && point[0] == '.')) return;
  char *at = strstr(buf, point);
  if (!at) return;
  *at = '.';
  memmove(at + 1, at + plen, strlen(at + plen) + 1);
}
