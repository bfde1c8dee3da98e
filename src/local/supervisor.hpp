// The sandbox's PID 1. It is cloned (never exec'd) from sbox on the host into fresh namespaces, so its
// memory belongs to the host's user namespace, and (for root's sandboxes) it is non-dumpable: processes
// inside cannot ptrace it, even as root there. It builds the root filesystem, reports ready, then reaps every
// orphan of the sandbox and ends the sandbox when its lifetime runs out (its exit takes every process with
// it). With a command (`run`), it starts that command and ends when it ends, with its status.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "local/idmap.hpp"
#include "local/launch.hpp"
#include "local/network.hpp"
#include "local/rootfs.hpp"

namespace sbox::local {

// The supervisor holds its sandbox's writable layers (fs/) open on this descriptor, for snapshots
// (/proc/PID/fd/kLayersFd).
constexpr int kLayersFd = 1000;

struct SupervisorPlan {
    RootfsPlan rootfs;
    IdMap idmap;
    std::string sandbox_dir; // the sandbox's state directory on the host
    std::optional<std::chrono::milliseconds> lifetime;
    std::optional<LaunchSpec> command;    // `run`: the command, whose end ends the sandbox
    bool die_with_parent = false;         // `run` in the foreground: the sandbox dies with the sbox process
    bool owner_must_join = false;         // rootless: stay dumpable so the owner's `exec` may setns
    std::vector<std::string> layer_paths; // host side: the snapshot layers' directories, top first
    // --network full: the network stack that the starter attaches. With a command, the supervisor starts
    // it only once the starter says the network is up ("network").
    std::optional<NetworkPlan> network;
};

// The conversation between the sbox process that started the sandbox and its supervisor, over a
// SOCK_SEQPACKET pair: "go" once the id maps are written, "go" again with the idmapped lower layers
// attached (or none), then "ready" or "error\t<message>" back.
void send_go(int sock, const std::vector<int>& fds);
// One message of text each way (SOCK_SEQPACKET keeps their bounds); a closed peer reads as "".
// The monitor and its caller speak the same way ("ready", "ack", "recorded").
void send_text(int sock, const std::string& text);
std::string receive_text(int sock);
std::vector<int> receive_go(int sock);

// Runs in the cloned child. `sync` is its end of the socket pair; every other descriptor is closed but
// `keep` (the run command's error pipe).
[[noreturn]] void supervisor_main(const SupervisorPlan& plan, int sync, int keep);

} // namespace sbox::local
