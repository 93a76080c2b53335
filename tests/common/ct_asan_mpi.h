/* For test programs that start PETSc (and with it Open MPI): include once,
 * in the file with main().
 *
 * Under AddressSanitizer, unwind fully on every allocation, so that the
 * leaks Open MPI makes inside MPI_Init (PETSc's first use), in libc without
 * frame pointers and in plugins it unloads again, show the ompi_mpi_init
 * frame that tests/lsan.supp suppresses. ASAN_OPTIONS from the environment
 * still apply on top of this. */
#ifndef CT_ASAN_MPI_H
#define CT_ASAN_MPI_H

const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "fast_unwind_on_malloc=0"; }

#endif
