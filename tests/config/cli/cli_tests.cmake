# Tests of the `cotangent` command: exit statuses 0/1/2, --help,
# --version, -o, --set, check, codegen. Included from tests/CMakeLists.txt.
set(_cli_dir ${CMAKE_CURRENT_LIST_DIR})
set(_cli_work ${CMAKE_CURRENT_BINARY_DIR}/config-cli)
set(_lv ${PROJECT_SOURCE_DIR}/examples/config/lotka_volterra.yaml)

# ct_add_cli_test(NAME RC rc ARGS ... [OUT regex] [ERR regex] [NOT regex]
#                 [FILES ...] [CLEAN dir] [COMPILE file])
function(ct_add_cli_test name)
  cmake_parse_arguments(A "" "RC;OUT;ERR;NOT;CLEAN;COMPILE" "ARGS;FILES" ${ARGN})
  add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:cotangent_cli>
    "-DARGS=${A_ARGS}" -DRC=${A_RC} "-DOUT_REGEX=${A_OUT}" "-DERR_REGEX=${A_ERR}"
    "-DNOT_REGEX=${A_NOT}" "-DFILES=${A_FILES}" -DCLEAN=${A_CLEAN}
    -DCOMPILE=${A_COMPILE} -DDRIVER=${_cli_dir}/codegen_driver.c
    -P ${_cli_dir}/run_cli.cmake)
  set_tests_properties(${name} PROPERTIES LABELS config
    ENVIRONMENT "COTANGENT_CACHE=${CMAKE_BINARY_DIR}/jit-cache")
endfunction()

ct_add_cli_test(config.cli.version RC 0 ARGS --version OUT "^cotangent [0-9]+\\.[0-9]+\\.[0-9]+")
ct_add_cli_test(config.cli.help RC 0 ARGS --help OUT "usage: cotangent <command>.*codegen")
ct_add_cli_test(config.cli.help_run RC 0 ARGS run --help OUT "usage: cotangent run.*--set")
ct_add_cli_test(config.cli.help_check RC 0 ARGS check --help OUT "usage: cotangent check")
ct_add_cli_test(config.cli.help_codegen RC 0 ARGS codegen --help OUT "usage: cotangent codegen")
ct_add_cli_test(config.cli.no_arguments RC 2 ARGS "" ERR "usage: cotangent")
ct_add_cli_test(config.cli.unknown_command RC 2 ARGS frobnicate ERR "unknown command 'frobnicate'")
ct_add_cli_test(config.cli.unknown_option RC 2 ARGS run ${_lv} --fast ERR "unknown option '--fast'")
ct_add_cli_test(config.cli.no_file RC 2 ARGS run ERR "which config file")
ct_add_cli_test(config.cli.codegen_needs_o RC 2 ARGS codegen ${_lv} ERR "-o model.c is required")
ct_add_cli_test(config.cli.missing_file RC 2 ARGS check ${_cli_work}/no-such.yaml
  ERR "no-such.yaml")
ct_add_cli_test(config.cli.undefined_name RC 2 ARGS check ${_cli_dir}/undefined_name.yaml
  ERR "undefined_name.yaml:6:[0-9]+: .*kk.*\\^")
ct_add_cli_test(config.cli.data_outside_span RC 2 ARGS check ${_cli_dir}/data_outside_span.yaml
  ERR "data_outside_span.csv:3:1: data time 2 is outside the time span")
ct_add_cli_test(config.cli.check RC 0 ARGS check ${_lv}
  OUT "config OK.*states +2.*parameters +4.*Jacobian +2 x 2, 4 nonzeros.*linear solver auto +dense")
ct_add_cli_test(config.cli.run RC 0 ARGS run ${_lv} -o ${_cli_work}/run -q
  CLEAN ${_cli_work}/run
  OUT "negative log-likelihood.*finite-difference check +passed"
  FILES ${_cli_work}/run/summary.json ${_cli_work}/run/trajectory.csv
        ${_cli_work}/run/sensitivities.csv ${_cli_work}/run/gradient.csv
        ${_cli_work}/run/trajectory.svg ${_cli_work}/run/sensitivities.svg
        ${_cli_work}/run/gradient.svg)
ct_add_cli_test(config.cli.set RC 0
  ARGS run ${_lv} -o ${_cli_work}/set -q --set analyses.2.check=none --set solver.rtol=1e-9
  CLEAN ${_cli_work}/set NOT "finite-difference check" FILES ${_cli_work}/set/summary.json)
ct_add_cli_test(config.cli.set_unknown_key RC 2
  ARGS check ${_lv} --set solver.rtoll=1e-3 ERR "rtoll.*rtol")
ct_add_cli_test(config.cli.solver_fails RC 1
  ARGS run ${_cli_dir}/solver_fails.yaml -o ${_cli_work}/fails -q --set solver.max_steps=20
  CLEAN ${_cli_work}/fails ERR "analysis failed: .*t = [0-9.e+-]+: too much work"
  OUT "FAILED" FILES ${_cli_work}/fails/summary.json ${_cli_work}/fails/trajectory.csv)
ct_add_cli_test(config.cli.codegen RC 0 ARGS codegen ${_lv} -o ${_cli_work}/gen/lv.c
  CLEAN ${_cli_work}/gen OUT "lotka_volterra_f, lotka_volterra_jvp"
  FILES ${_cli_work}/gen/lv.c ${_cli_work}/gen/lv.h COMPILE ${_cli_work}/gen/lv.c)
# Ctrl-C: SIGINT during a run exits 130 with the finished results written.
add_test(NAME config.cli.interrupt COMMAND ${_cli_dir}/interrupt.sh
  $<TARGET_FILE:cotangent_cli> ${PROJECT_SOURCE_DIR}/examples/config/chain.yaml
  ${_cli_work}/interrupt)
set_tests_properties(config.cli.interrupt PROPERTIES LABELS config)
# Solver settings: an ARKODE method with sensitivities is a config error;
# per-state atol on a DAE (the algebraic variable gets the scalar atol).
set(_rob ${PROJECT_SOURCE_DIR}/examples/config/robertson.yaml)
set(_dae ${PROJECT_SOURCE_DIR}/examples/config/robertson_dae.yaml)
ct_add_cli_test(config.cli.arkode_with_sensitivities RC 2
  ARGS check ${_rob} --set solver.method=erk ERR "robertson.yaml:[0-9]+:[0-9]+: solver.method erk")
ct_add_cli_test(config.cli.dae_band_refused RC 2
  ARGS check ${_dae} --set solver.linear_solver=band ERR "'band' is not available for DAE")
ct_add_cli_test(config.cli.dae_atol_per_state RC 0
  ARGS run ${_dae} -q -o ${_cli_work}/dae_atol --set "solver.atol={y1: 1e-10, y2: 1e-12}"
  CLEAN ${_cli_work}/dae_atol OUT "finite-difference check +passed")
ct_add_cli_test(config.cli.default_outdir RC 0
  ARGS run ${_lv} -q --set analyses.2.check=none OUT "negative log-likelihood"
  FILES ${CMAKE_CURRENT_BINARY_DIR}/results/lotka_volterra/summary.json)
# The bad-input suite through the command: `cotangent check` of every case of
# tests/config/bad/EXPECT (configs, expressions, data files) exits 2, prints
# nothing on stdout and names the location and the words on stderr.
add_executable(ct_bad_inputs ${_cli_dir}/bad_inputs.c)
add_test(NAME config.cli.bad_inputs COMMAND ct_bad_inputs $<TARGET_FILE:cotangent_cli>
  ${PROJECT_SOURCE_DIR}/tests/config/bad ${_cli_work}/bad_inputs)
set_tests_properties(config.cli.bad_inputs PROPERTIES LABELS config
  ENVIRONMENT "COTANGENT_CACHE=${CMAKE_BINARY_DIR}/jit-cache")
# method forward with an integral objective (the integrand as an extra state),
# with a per-state atol: the same gradient as the adjoint, checked by
# central differences.
ct_add_cli_test(config.cli.forward_integral RC 0
  ARGS run ${_rob} -q -o ${_cli_work}/forward_integral
       "--set=analyses.4.objective={integral: y3}" --set analyses.4.check=finite_difference
  CLEAN ${_cli_work}/forward_integral
  OUT "final_y1_forward: gradient\n +objective +2\\.822893[0-9]+e\\+03\n +dJ/d p1 +2\\.16608[0-9]+e\\+04\n +dJ/d p2 +-8\\.44289[0-9]+e-02\n +dJ/d p3 +1\\.40715[0-9]+e-05\n +finite-difference check +passed")
