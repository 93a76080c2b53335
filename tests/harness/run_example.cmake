# Runs an example and compares its standard output with an expected-output
# file through ct-numdiff. Variables: EXE, EXPECTED, OUT, NUMDIFF, RTOL, ATOL,
# and optionally ARGS (a ;-list) and EXPECT_MISMATCH (the comparison must
# then report a difference — exit 1 — after a clean run, for testing the
# harness itself; a crash or unreadable file still fails).
execute_process(COMMAND ${EXE} ${ARGS} OUTPUT_FILE ${OUT}
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXE} exited with ${rc}\n${err}")
endif()
execute_process(COMMAND ${NUMDIFF} --rtol ${RTOL} --atol ${ATOL} ${EXPECTED} ${OUT}
                RESULT_VARIABLE rc)
if(EXPECT_MISMATCH)
  if(NOT rc EQUAL 1)
    message(FATAL_ERROR "expected ct-numdiff to report a mismatch (exit 1), got ${rc}")
  endif()
  message(STATUS "mismatch detected, as it must be")
elseif(NOT rc EQUAL 0)
  message(FATAL_ERROR "output of ${EXE} differs from ${EXPECTED} (see above)")
endif()
