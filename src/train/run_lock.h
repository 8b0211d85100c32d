// The exclusive lock of a training out_dir: one `t6 train` (or `--resume`) at a time writes
// checkpoints and metrics.jsonl there. It is an advisory flock(2) on out_dir/train.lock, which also
// records the holder (pid, host, start time) for the error the next run prints. The kernel drops
// the lock when the holder exits, however it ends (kill -9 included), so a stale lock file never
// blocks a later run.
#pragma once
#include <string>

namespace t6 {

class RunLock {
  public:
    // Creates out_dir if needed and takes the lock, or fails at once with one line naming
    // out_dir and the holder.
    explicit RunLock(const std::string& out_dir);
    ~RunLock();
    RunLock(const RunLock&) = delete;
    RunLock& operator=(const RunLock&) = delete;

  private:
    int fd_ = -1;
};

}  // namespace t6
