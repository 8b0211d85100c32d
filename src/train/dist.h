// Data-parallel training over MPI: the process group of a `t6 train` run started by a launcher
// (mpirun / mpiexec of Open MPI or MPICH, or Slurm's srun with PMI/PMIx), and the collectives the
// trainer needs.
//
// MPI is initialised only when a launcher started the process, detected by its environment
// (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK or PMI_SIZE); T6_MPI=1 forces initialisation,
// T6_MPI=0 prevents it. A plain `t6 train` therefore never starts MPI (Open MPI's singleton
// start spawns helper daemons) and runs as one process of rank 0 in a group of 1. Builds without
// MPI (cmake -DT6_MPI=OFF) always run as one process and refuse a launcher with more ranks.
//
// Non-blocking all-reduces are progressed by a helper thread while backward computes (MPI is
// initialised with MPI_THREAD_SERIALIZED; a mutex keeps the two threads' calls apart);
// T6_MPI_PROGRESS_THREAD=0 turns it off.
//
// Every collective waits with a deadline (set_timeout): a rank whose peers do not answer in time
// (one was stopped, hangs, or died without the launcher noticing) prints what it was waiting for
// and aborts the whole job. A rank that fails with an error prints it with its rank and aborts
// the job (init() installs the handler of core/fatal.h's report_fatal), so no rank is left waiting.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace t6::dist {

// Initialises MPI if a launcher started this process (idempotent), and installs the fatal-error
// handler (core/fatal.h): "t6: error: rank R of N: <message>", then, in a group of several ranks,
// MPI_Abort of the whole job. Fails with a one-line error if a launcher asks for several ranks and
// this t6 was built without MPI.
void init();
// MPI_Finalize if init() started MPI (at normal exit).
void finalize();

bool mpi_enabled();  // compiled with MPI
bool launched();     // the environment names a launcher (see above)
int rank();          // 0 in a single process
int size();          // 1 in a single process
// "rank R of N: " in a group of several ranks, else "".
std::string rank_prefix();

// Seconds a rank waits for the others in one collective before stopping the job (default 300).
void set_timeout(double seconds);
double timeout();

// Blocking collectives (no-ops in a group of 1). `what` names the operation in timeout messages.
void allreduce_sum(double* v, int n, const char* what);
void allreduce_sum(float* v, size_t n, const char* what);
void broadcast(float* v, size_t n, int root, const char* what);
void broadcast(std::string& s, int root, const char* what);
// Minimum and maximum of one value over the ranks.
void allreduce_minmax(uint64_t v, uint64_t& lo, uint64_t& hi, const char* what);
// Every rank contributes [offsets[r], offsets[r+1]) of buf (its own part in place); afterwards
// every rank holds all of buf.
void allgather_parts(float* buf, const std::vector<size_t>& offsets, const char* what);
// Rank r sends part [offsets[r], offsets[r+1]) from `part`; root receives all of them into `all`
// (size offsets.back(); only read on root).
void gather_parts(const float* part, float* all, const std::vector<size_t>& offsets, int root,
                  const char* what);

// [offsets[r], offsets[r+1]): an even split of n elements over `parts` ranks.
std::vector<size_t> split_evenly(size_t n, int parts);

// In-place sum all-reduce of gradient buckets started while the backward pass still runs:
// start() launches a non-blocking all-reduce of one bucket, poke() lets MPI progress the
// outstanding ones (called between layers), finish() waits for all of them (and for gathers).
class BucketReducer {
  public:
    BucketReducer();
    ~BucketReducer();
    BucketReducer(const BucketReducer&) = delete;
    BucketReducer& operator=(const BucketReducer&) = delete;

    void start(float* data, size_t count);
    // Starts an all-gather of `bytes` from every rank into recv (ranks x bytes, in rank order).
    void gather(const void* send, void* recv, size_t bytes);
    void poke();
    // Waits for every started bucket; returns the seconds spent waiting.
    double finish();
    // Seconds spent in start()/poke() since the last finish() (MPI calls during backward).
    double call_seconds() const { return call_s_; }

  private:
    struct Requests;  // the MPI_Request handles (mpi.h stays out of this header)
    std::unique_ptr<Requests> reqs_;
    double call_s_ = 0;
};

}  // namespace t6::dist
