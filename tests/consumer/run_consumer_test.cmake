# ctest script: install bgevl into a prefix, move the prefix elsewhere (it must be relocatable),
# then configure, build and run tests/consumer against the moved copy; with -DFROM_BUILD_TREE=ON
# against the build tree itself (find_package(bgevl) with bgevl_DIR = the build folder).
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
if(FROM_BUILD_TREE)
  run(${CMAKE_COMMAND} -S "${CONSUMER_SRC}" -B "${WORK_DIR}/build" "-Dbgevl_DIR=${BGEVL_BUILD_DIR}"
      "-DCMAKE_PREFIX_PATH=${TORCH_DIR}" -DCMAKE_BUILD_TYPE=Release)
else()
  run(${CMAKE_COMMAND} --install "${BGEVL_BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
  file(RENAME "${WORK_DIR}/prefix" "${WORK_DIR}/moved-prefix")
  run(${CMAKE_COMMAND} -S "${CONSUMER_SRC}" -B "${WORK_DIR}/build"
      "-DCMAKE_PREFIX_PATH=${WORK_DIR}/moved-prefix;${TORCH_DIR}" -DCMAKE_BUILD_TYPE=Release)
endif()
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build" -j2)
run("${WORK_DIR}/build/consumer" "${MODEL_DIR}" "${MODEL_DIR}/../gallery" "${WORK_DIR}/gallery.index"
    "${MODEL_DIR}/../gallery/day/one_red_circle_left.png" "make the background dark"
    "night/one_red_circle_left.png")
