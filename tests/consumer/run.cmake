# Installs handgraph from the build tree into a scratch prefix and uses the package as a
# library user would (tests/consumer/CMakeLists.txt). Called by CTest:
#   cmake -DBUILD=<build tree> -DSRC=<this folder> -DWORK=<scratch> -DSOURCE=<handgraph source>
#         -DSTB_INCLUDE_DIR=<stb's folder> -DCXX=<compiler> -P run.cmake
file(REMOVE_RECURSE "${WORK}")
set(prefix "${WORK}/prefix")

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc)
    message(FATAL_ERROR "install_consumer: ${what} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "install_consumer: ${what}: ok")
endfunction()

run("install" ${CMAKE_COMMAND} --install "${BUILD}" --prefix "${prefix}")

# The package files are arch-independent: under share/, none under lib/.
set(dir "${prefix}/share/cmake/handgraph")
foreach(f handgraphConfig.cmake handgraphConfigVersion.cmake handgraphTargets.cmake)
  if(NOT EXISTS "${dir}/${f}")
    message(FATAL_ERROR "install_consumer: ${dir}/${f} not installed")
  endif()
endforeach()
file(GLOB_RECURSE under_lib "${prefix}/lib*/cmake/*")
if(under_lib)
  message(FATAL_ERROR "install_consumer: package files under lib: ${under_lib}")
endif()
# Nothing of the building machine's stb, no OpenMP, no warning flags in the exported targets.
file(GLOB targets_files "${dir}/handgraphTargets*.cmake")
foreach(f ${targets_files})
  file(READ "${f}" text)
  if(text MATCHES "[/\"]stb[/\"]|OpenMP|openmp|-Wall|-Wextra")
    message(FATAL_ERROR "install_consumer: ${f} names ${CMAKE_MATCH_0}")
  endif()
  if(STB_INCLUDE_DIR)
    string(FIND "${text}" "${STB_INCLUDE_DIR}" at)
    if(at GREATER -1)
      message(FATAL_ERROR "install_consumer: ${f} names ${STB_INCLUDE_DIR}")
    endif()
  endif()
endforeach()

set(common -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
if(CXX)
  list(APPEND common -DCMAKE_CXX_COMPILER=${CXX})
endif()

# 1. Inference only, with stb hidden from the package's find_path. When stb's folder is not
#    one the compiler searches anyway, the program also checks that <stb_image.h> is not on
#    its include path.
set(hide "")
set(check_no_stb OFF)
if(STB_INCLUDE_DIR)
  set(hide -DCMAKE_IGNORE_PATH=${STB_INCLUDE_DIR})
  if(NOT STB_INCLUDE_DIR MATCHES "^/usr(/local)?/include/?$")
    set(check_no_stb ON)
  endif()
endif()
run("configure the inference consumer without stb" ${CMAKE_COMMAND} -S "${SRC}" -B "${WORK}/inference"
    ${common} -DMODE=inference ${hide} -DCHECK_NO_STB=${check_no_stb})
run("build the inference consumer" ${CMAKE_COMMAND} --build "${WORK}/inference")
run("run the inference consumer" "${WORK}/inference/consumer_inference")

# 2. Images: the package finds stb itself.
run("configure the images consumer" ${CMAKE_COMMAND} -S "${SRC}" -B "${WORK}/images" ${common} -DMODE=images)
run("build the images consumer" ${CMAKE_COMMAND} --build "${WORK}/images")
run("run the images consumer" "${WORK}/images/consumer_images" "${WORK}/images/read_back.png")

# 3. Images asked for where stb cannot be found: find_package fails, naming stb.
if(hide)
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${SRC}" -B "${WORK}/images_no_stb" ${common} -DMODE=images ${hide}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "stb_image.h")
    message(FATAL_ERROR "install_consumer: COMPONENTS images without stb: expected a failure naming stb_image.h, "
                        "got ${rc}:\n${out}\n${err}")
  endif()
  message(STATUS "install_consumer: COMPONENTS images without stb refused: ok")
endif()

# 4. handgraph's source added to a project that sets no build type (configure only).
run("configure handgraph as a subproject" ${CMAKE_COMMAND} -S "${SRC}" -B "${WORK}/subproject"
    -DMODE=subproject -DHANDGRAPH_SOURCE_DIR=${SOURCE})
