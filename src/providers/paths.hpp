// Where sbox keeps its state (design.md, "State"). This is the one implementation of the rules; the local
// provider's adapter passes these directories to the engine.
#pragma once

#include <filesystem>

namespace sbox {

// Persistent state (the index, the local provider's sandboxes and snapshots):
// $SBOX_ROOT/data; as root /var/lib/sbox; otherwise $XDG_DATA_HOME/sbox (default ~/.local/share/sbox).
std::filesystem::path data_dir();

// Volatile state (locks, sockets, pid files):
// $SBOX_ROOT/run; as root /run/sbox; otherwise $XDG_RUNTIME_DIR/sbox, or /tmp/sbox-<uid> when that is unset.
std::filesystem::path runtime_dir();

// The default configuration file: $XDG_CONFIG_HOME/sbox/config.toml (default ~/.config/sbox/config.toml).
std::filesystem::path default_config_file();

// $HOME, or the home directory in the password database when HOME is unset or empty.
std::filesystem::path home_dir();

} // namespace sbox
