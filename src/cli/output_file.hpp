// A file named on the command line for sbox to write (snapshot export FILE, bench --export-* F).
#pragma once

#include <string>

#include "local/system.hpp"

namespace sbox::cli {

// Written whole or not at all:
//   "-" and /dev/stdout are sbox's stdout (opening /dev/stdout anew would write over what stdout holds);
//   an existing device, FIFO or symbolic link (/dev/null, a process substitution) is written in place, never
//   replaced: renaming a temporary file over /dev/null as root would replace the device with a file;
//   anything else is written to a temporary file beside it, which commit() renames over it.
// Destroyed without commit() (a failure), it leaves nothing behind and the old file untouched.
class OutputFile {
  public:
    explicit OutputFile(std::string path);
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    int fd() const { return fd_ >= 0 ? fd_ : owned_.get(); }
    // Error(invalid) "cannot write PATH: ..." when the data cannot be made durable or put in place.
    void commit();

    // Error(usage) naming `flag` when PATH surely cannot be written (its directory is not writable): a check
    // before a long run.
    static void check(const std::string& path, const char* flag);

  private:
    std::string path_;
    std::string tmp_; // empty: written in place
    local::Fd owned_;
    int fd_ = -1; // stdout, not ours to close
    bool committed_ = false;
};

} // namespace sbox::cli
