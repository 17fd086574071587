# The packaging test: installs the build tree into a fresh prefix (stripped), checks what is
# there, then configures and builds tests/packaging (find_package(orderflow CONFIG)) against it
# and runs the consumer on the installed graphs/orders.yaml.
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -P run.cmake
foreach(v BUILD_DIR SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run.cmake needs -D${v}=...")
  endif()
endforeach()
set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/consumer")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run("cmake --install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}" --strip)

foreach(f bin/orderflow bin/orderflow-monitor share/orderflow/graphs/orders.yaml
          include/orderflow/graph/status.h include/orderflow/graph/domain.h include/orderflow/domain/orders/orders_domain.h
          include/orderflow/nodes/kinds.h include/orderflow/connectors/kinds.h
          include/orderflow/connectors/stores.h include/orderflow/orderflow.pb.h
          lib/cmake/orderflow/orderflowConfig.cmake lib/cmake/orderflow/orderflowConfigVersion.cmake)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
file(SIZE "${prefix}/bin/orderflow" installed_size)
file(SIZE "${BUILD_DIR}/server/orderflow" build_size)
message(STATUS "bin/orderflow: ${installed_size} bytes installed (stripped), ${build_size} in the build tree")
if(NOT installed_size LESS build_size)
  message(FATAL_ERROR "the installed orderflow is not stripped")
endif()
# The binary runs from the prefix and validates the installed graph.
run("installed orderflow validate" "${prefix}/bin/orderflow" validate "${prefix}/share/orderflow/graphs/orders.yaml")

run("consumer configure" ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/packaging" -B "${consumer_build}"
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run("consumer build" ${CMAKE_COMMAND} --build "${consumer_build}" -j2)
run("consumer" "${consumer_build}/consumer" "${prefix}/share/orderflow/graphs/orders.yaml")
message(STATUS "${last_output}")
if(NOT last_output MATCHES "ok \\(")
  message(FATAL_ERROR "consumer printed: ${last_output}")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
