# Cross build for aarch64 Linux (ARM64) with Debian's g++-aarch64-linux-gnu against an arm64
# sysroot made of the arm64 -dev packages unpacked by scripts/aarch64-sysroot.sh (nothing arm64 is
# installed on the building machine). scripts/test-aarch64.sh uses it; by hand:
#   cmake -S . -B build-aarch64/build -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake \
#     [-DT6_AARCH64_SYSROOT=/path/to/sysroot]
# A native build on an ARM64 Debian machine needs no toolchain file.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(T6_AARCH64_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../build-aarch64/sysroot"
    CACHE PATH "arm64 sysroot (scripts/aarch64-sysroot.sh)")
get_filename_component(T6_AARCH64_SYSROOT "${T6_AARCH64_SYSROOT}" ABSOLUTE)
if(NOT EXISTS "${T6_AARCH64_SYSROOT}/usr/include/hwy/highway.h")
  message(FATAL_ERROR "arm64 sysroot not found at ${T6_AARCH64_SYSROOT}: run scripts/aarch64-sysroot.sh")
endif()

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_SYSROOT "${T6_AARCH64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${T6_AARCH64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config (Highway, cpp-httplib) reads the sysroot's .pc files and prefixes their paths.
set(ENV{PKG_CONFIG_DIR} "")
set(ENV{PKG_CONFIG_LIBDIR}
    "${T6_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${T6_AARCH64_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${T6_AARCH64_SYSROOT}")

# Test programs run under qemu-aarch64 (qemu-user-static) with the sysroot's loader and libraries
# (CTest and gtest_discover_tests use the emulator).
find_program(T6_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(T6_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${T6_QEMU_AARCH64};-L;${T6_AARCH64_SYSROOT}")
endif()
