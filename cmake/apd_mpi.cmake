# MPI for the class-parallel tools, by the cache setting APD_MPI: AUTO (use it when found),
# ON/TRUE (required), OFF/FALSE (never). Sets APD_HAVE_MPI; the target is MPI::MPI_C.
# On Debian: apt-get install libopenmpi-dev openmpi-bin (or run scripts/setup.sh).
set(APD_HAVE_MPI OFF)
if(APD_MPI STREQUAL "AUTO")
  find_package(MPI QUIET COMPONENTS C)
elseif(APD_MPI)
  find_package(MPI COMPONENTS C)
  if(NOT MPI_C_FOUND)
    message(FATAL_ERROR "APD_MPI=ON but no MPI C library was found. On Debian: apt-get install "
                        "libopenmpi-dev openmpi-bin  (or -DAPD_MPI=OFF)")
  endif()
endif()
if(MPI_C_FOUND)
  set(APD_HAVE_MPI ON)
  message(STATUS "MPI: ${MPI_C_LIBRARIES} (class-parallel apd-convert and apd-eval)")
else()
  message(STATUS "MPI: off (APD_MPI=${APD_MPI})")
endif()
