// The hidden directory an extraction lands in first, and moving what it holds into place.
#pragma once

#include <string>

#include "local/system.hpp"

namespace sbox::local::archive_impl {

// ".sbox-extract-XXXXXX" (mode 0700) inside the destination. Whatever is still in it when the Staging goes
// away is removed: everything after a failure, only the husks of merged directories after a success.
class Staging {
  public:
    explicit Staging(int dest_dir_fd);
    ~Staging();
    Staging(const Staging&) = delete;
    Staging& operator=(const Staging&) = delete;

    int fd() const { return fd_.get(); }

    // Moves every top-level entry into the destination: a directory merges into an existing directory, a
    // non-directory replaces an existing non-directory. Every clash (directory vs non-directory, a directory
    // to merge across a mount point) is found before anything moves: then nothing does (Error(conflict)).
    void move_into_place();

  private:
    int dest_;
    std::string name_;
    Fd fd_;
    bool removed_ = false;
};

// Removes `name` in `dir_fd` and everything below it, never following a symlink. Best effort: used on the
// way out of failures, so it reports nothing.
void remove_tree(int dir_fd, const std::string& name) noexcept;

} // namespace sbox::local::archive_impl
