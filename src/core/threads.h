// Thread control: t6 uses OpenMP for its own loops and the OpenMP build of OpenBLAS, so one pool
// serves both.
#pragma once

namespace t6 {

// Sets the number of threads for t6 loops and GEMMs (n <= 0: leave the OpenMP default).
void set_num_threads(int n);
int num_threads();

}  // namespace t6
