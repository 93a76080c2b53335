# Finds Cotangent's dependencies the way each package supports, and defines
# the imported targets the library links. Included by the build and by the
# installed cotangentConfig.cmake, so consumers of the static library get the
# same targets.
include_guard(GLOBAL)

# SUNDIALS 6.x ships a CMake package.
find_package(SUNDIALS 6.4 REQUIRED)

# MPI (PETSc on Debian is built with Open MPI).
find_package(MPI REQUIRED COMPONENTS C)

# PETSc, libyaml: pkg-config.
find_package(PkgConfig REQUIRED)
pkg_check_modules(COTANGENT_PETSC REQUIRED QUIET IMPORTED_TARGET GLOBAL PETSc>=3.18)
pkg_check_modules(COTANGENT_YAML REQUIRED QUIET IMPORTED_TARGET GLOBAL yaml-0.1)

# SuiteSparse 5.x has no CMake package: headers and libraries by hand.
if(NOT TARGET cotangent_deps::suitesparse)
  find_path(COTANGENT_SUITESPARSE_INCLUDE_DIR klu.h
            PATH_SUFFIXES suitesparse REQUIRED)
  set(_ct_ss_libs)
  foreach(_lib klu umfpack cholmod colamd amd btf suitesparseconfig)
    find_library(COTANGENT_SUITESPARSE_${_lib}_LIBRARY ${_lib} REQUIRED)
    list(APPEND _ct_ss_libs ${COTANGENT_SUITESPARSE_${_lib}_LIBRARY})
  endforeach()
  add_library(cotangent_deps::suitesparse INTERFACE IMPORTED GLOBAL)
  set_target_properties(cotangent_deps::suitesparse PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${COTANGENT_SUITESPARSE_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${_ct_ss_libs}")
endif()

# LAPACK (dense LU of ct_linsolve "dense"): FindLAPACK's imported target.
find_package(LAPACK REQUIRED)

# ColPack (graph coloring, C++) has no CMake or pkg-config file either. Its
# headers include each other by bare name, so the include folder is the
# ColPack folder itself (SYSTEM, as for every imported target: its headers
# do not build warning-free); the shim that uses it needs the C++ runtime.
if(NOT TARGET cotangent_deps::colpack)
  find_path(COTANGENT_COLPACK_INCLUDE_DIR ColPackHeaders.h
            PATH_SUFFIXES ColPack REQUIRED)
  find_library(COTANGENT_COLPACK_LIBRARY ColPack REQUIRED)
  add_library(cotangent_deps::colpack INTERFACE IMPORTED GLOBAL)
  set_target_properties(cotangent_deps::colpack PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${COTANGENT_COLPACK_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${COTANGENT_COLPACK_LIBRARY};stdc++")
endif()

set(COTANGENT_DEP_TARGETS
  SUNDIALS::cvodes_shared SUNDIALS::idas_shared SUNDIALS::arkode_shared
  SUNDIALS::kinsol_shared SUNDIALS::nvecserial_shared
  SUNDIALS::sunmatrixdense_shared SUNDIALS::sunmatrixband_shared
  SUNDIALS::sunmatrixsparse_shared SUNDIALS::sunlinsoldense_shared
  SUNDIALS::sunlinsolband_shared SUNDIALS::sunlinsolklu_shared
  SUNDIALS::sunlinsolspgmr_shared
  PkgConfig::COTANGENT_PETSC PkgConfig::COTANGENT_YAML MPI::MPI_C
  cotangent_deps::suitesparse cotangent_deps::colpack LAPACK::LAPACK m ${CMAKE_DL_LIBS})

# Debian's PETSc.pc adds -D_FORTIFY_SOURCE=2 and -Wdate-time to the compile
# flags, which breaks -O0 -Werror builds; keep only its include folders.
set_property(TARGET PkgConfig::COTANGENT_PETSC PROPERTY INTERFACE_COMPILE_OPTIONS "")
