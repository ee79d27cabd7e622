# VkFFT from the system (Debian's libvkfft-dev), as the INTERFACE target
# lvk_vkfft: include directory, VKFFT_BACKEND=0 (Vulkan) and glslang, which
# VkFFT uses to compile its generated shaders at plan creation.
#
# VkFFT 1.3.x (a vkFFT/ directory of split headers next to vkFFT.h) compiles
# as C11 against glslang 12 and is used as installed. The single-file 1.2.x
# header does not, so a patched copy is written into the build tree:
#   1. `VkCommandBuffer commandBuffer = {};` (three times) is an empty scalar
#      initializer, which C rejects in every -std: use VK_NULL_HANDLE.
#   2. Its positional `glslang_resource_t default_resource = {...}` predates
#      the fields glslang 12 added before `.limits`, so the limits read as
#      zero and every generated shader fails to compile at run time
#      (VKFFT_ERROR_FAILED_SHADER_PARSE). Use glslang_default_resource() from
#      <glslang/Public/resource_limits_c.h>; the stale table is compiled out.
# Every pattern must occur exactly as often as expected, or configuration
# fails: a different 1.2.x header needs its patches re-checked, not skipped.
# (A third issue, the descriptor range VkFFT binds for an out-of-place R2C
# input, is handled by the caller: see src/optvis/fft.c.)

if(NOT TARGET glslang::glslang)
  find_package(Threads REQUIRED)
  find_package(glslang CONFIG REQUIRED)
endif()
if(NOT VKFFT_INCLUDE_DIR)
  find_path(VKFFT_INCLUDE_DIR vkFFT.h REQUIRED)
endif()

set(LVK_VKFFT_HEADER ${VKFFT_INCLUDE_DIR}/vkFFT.h)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${LVK_VKFFT_HEADER})

# Replaces `expected` occurrences of `from` by `to` in the variable `var`.
function(lvk_vkfft_patch var from to expected)
  string(REPLACE "${from}" "" without "${${var}}")
  string(LENGTH "${${var}}" len_with)
  string(LENGTH "${without}" len_without)
  string(LENGTH "${from}" len_from)
  math(EXPR found "(${len_with} - ${len_without}) / ${len_from}")
  if(NOT found EQUAL expected)
    message(FATAL_ERROR "${LVK_VKFFT_HEADER}: expected ${expected} occurrence(s) of "
                        "'${from}', found ${found}; this VkFFT version needs its patches "
                        "re-checked (cmake/vkfft_header.cmake)")
  endif()
  string(REPLACE "${from}" "${to}" patched "${${var}}")
  set(${var} "${patched}" PARENT_SCOPE)
endfunction()

add_library(lvk_vkfft INTERFACE)
target_compile_definitions(lvk_vkfft INTERFACE VKFFT_BACKEND=0)
target_link_libraries(lvk_vkfft INTERFACE glslang::SPIRV glslang::glslang)

if(EXISTS ${VKFFT_INCLUDE_DIR}/vkFFT/vkFFT_Structs/vkFFT_Structs.h)
  message(STATUS "VkFFT: 1.3.x header in ${VKFFT_INCLUDE_DIR}, used as is")
  # SYSTEM: the header draws hundreds of -Wall -Wextra warnings.
  target_include_directories(lvk_vkfft SYSTEM INTERFACE ${VKFFT_INCLUDE_DIR})
else()
  find_path(LVK_GLSLANG_RESOURCE_DIR glslang/Public/resource_limits_c.h REQUIRED)
  file(READ ${LVK_VKFFT_HEADER} vkfft_src)
  string(REGEX MATCH "VkFFTGetVersion\\(\\) {[ \t\n]*return ([0-9]+);" _ "${vkfft_src}")
  set(vkfft_version "${CMAKE_MATCH_1}")
  if(NOT vkfft_version MATCHES "^102[0-9][0-9]$")
    message(FATAL_ERROR "${LVK_VKFFT_HEADER}: unrecognised VkFFT version '${vkfft_version}' "
                        "(expected 1.2.x, or 1.3.x with a vkFFT/ directory)")
  endif()
  lvk_vkfft_patch(vkfft_src "VkCommandBuffer commandBuffer = {};"
                  "VkCommandBuffer commandBuffer = VK_NULL_HANDLE;" 3)
  lvk_vkfft_patch(vkfft_src "#include <glslang/Include/glslang_c_interface.h>\n"
                  "#include <glslang/Include/glslang_c_interface.h>\n#include <glslang/Public/resource_limits_c.h>\n" 1)
  lvk_vkfft_patch(vkfft_src "const glslang_resource_t default_resource = {"
                  "const glslang_resource_t *default_resource = glslang_default_resource();\n#if 0 /* stale positional table: see cmake/vkfft_header.cmake */\n{" 2)
  lvk_vkfft_patch(vkfft_src "} };\n\t\t\tglslang_target_client_version_t"
                  "} };\n#endif\n\t\t\tglslang_target_client_version_t" 2)
  lvk_vkfft_patch(vkfft_src "&default_resource," "default_resource," 2)

  set(LVK_VKFFT_GEN_DIR ${CMAKE_BINARY_DIR}/generated/vkfft)
  file(MAKE_DIRECTORY ${LVK_VKFFT_GEN_DIR})
  # Written next to the final name and copied only when different, so an
  # unchanged header keeps its timestamp and nothing recompiles.
  file(WRITE ${LVK_VKFFT_GEN_DIR}/vkFFT.h.new "${vkfft_src}")
  configure_file(${LVK_VKFFT_GEN_DIR}/vkFFT.h.new ${LVK_VKFFT_GEN_DIR}/vkFFT.h COPYONLY)
  file(REMOVE ${LVK_VKFFT_GEN_DIR}/vkFFT.h.new)
  message(STATUS "VkFFT: ${vkfft_version} header patched into ${LVK_VKFFT_GEN_DIR}")

  target_include_directories(lvk_vkfft SYSTEM INTERFACE ${LVK_VKFFT_GEN_DIR})
  target_link_libraries(lvk_vkfft INTERFACE glslang::glslang-default-resource-limits)
endif()

# The headers' digest, compiled in: src/optvis/fft.c keys the compiled
# shaders it caches on disk by it, so that a VkFFT package that changes its
# code generator without changing its version number (or a new patch here)
# never loads binaries made by the old one.
if(LVK_VKFFT_GEN_DIR)
  file(SHA1 ${LVK_VKFFT_GEN_DIR}/vkFFT.h vkfft_digest)
else()
  file(GLOB_RECURSE vkfft_headers ${VKFFT_INCLUDE_DIR}/vkFFT/*.h)
  list(SORT vkfft_headers)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${vkfft_headers})
  set(vkfft_digests "")
  foreach(h ${LVK_VKFFT_HEADER} ${vkfft_headers})
    file(SHA1 ${h} d)
    string(APPEND vkfft_digests "${d}")
  endforeach()
  string(SHA1 vkfft_digest "${vkfft_digests}")
endif()
target_compile_definitions(lvk_vkfft INTERFACE LVK_VKFFT_DIGEST="${vkfft_digest}")
