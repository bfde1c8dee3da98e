// Removing sandboxes when sbox is interrupted. While at least one SandboxGuard lives, SIGINT, SIGTERM and
// SIGHUP do not end sbox: the handler records the signal and wakes a watcher thread, which removes every
// guarded sandbox at once (in parallel), so that the command can finish in an orderly way and exit 128+N.
// Signals that were ignored when the first guard began (nohup, background jobs) stay ignored. Guards may live
// in several threads at once (`sbox bench --concurrency`).
#pragma once

#include <csignal>
#include <memory>
#include <string>

#include "providers/provider.hpp"

namespace sbox {

// The signals a guard catches.
inline constexpr int kGuardedSignals[] = {SIGINT, SIGTERM, SIGHUP};

class SandboxGuard {
  public:
    // Catches the signals without guarding a sandbox: for a command that creates many in turn and wants to
    // stop between them (`sbox bench`).
    SandboxGuard();
    // Guards the sandbox that `provider` is about to create (see created()).
    explicit SandboxGuard(Provider& provider);
    // Removes the sandbox unless released or removed already; failures are swallowed (this is cleanup).
    ~SandboxGuard();
    SandboxGuard(const SandboxGuard&) = delete;
    SandboxGuard& operator=(const SandboxGuard&) = delete;

    // Records the sandbox's id. Returns the signal that arrived meanwhile (0: none), in which case the
    // sandbox has been removed already.
    int created(const std::string& id);
    // The signal that arrived since this guard began (or before, while another guard lived); 0: none.
    int signal() const;
    // Someone else is now responsible for removing the sandbox (a detached run).
    void release();
    // Removes the sandbox now; a failure other than "already gone" is thrown.
    void remove();

    struct State;

  private:
    std::shared_ptr<State> state_;
};

} // namespace sbox
