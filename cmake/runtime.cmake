# Support library for handgraph's own executables (examples, benchmarks, tests):
#  - the stb_image / stb_image_write implementation (one translation unit of ours);
#  - per-instruction-set kernel instantiations, chosen at run time (xsimd::dispatch),
#    so one build runs on CPUs with and without AVX-512.
# Library users who only include the headers get the kernels for their own compiler flags.
file(GLOB HANDGRAPH_RUNTIME_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/tools/runtime/*.cpp)
add_library(handgraph_runtime STATIC ${HANDGRAPH_RUNTIME_SOURCES})
target_link_libraries(handgraph_runtime PUBLIC handgraph::handgraph)
target_include_directories(handgraph_runtime PUBLIC ${HANDGRAPH_STB_INCLUDE_DIR})
set_target_properties(handgraph_runtime PROPERTIES POSITION_INDEPENDENT_CODE ON)
# Per-ISA flags for files named kernels_<isa>.cpp
foreach(src ${HANDGRAPH_RUNTIME_SOURCES})
  if(src MATCHES "kernels_avx512\\.cpp$")
    set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "-mavx512f;-mavx512cd;-mavx512bw;-mavx512dq;-mavx512vl;-mavx2;-mfma")
  elseif(src MATCHES "kernels_avx2\\.cpp$")
    set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
  endif()
endforeach()
target_compile_definitions(handgraph_runtime PUBLIC HANDGRAPH_RUNTIME_DISPATCH=1)
