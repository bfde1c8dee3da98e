// `sbox cp`, the same for every provider (docker cp semantics). The provider moves tar streams in and out of
// a sandbox (Provider::stat_path, upload, download); this side decides what lands where and with which name,
// makes and unpacks the host's half of each stream, and keeps the rules:
//  - a file or a directory tree; into an existing directory the source lands inside it; "SRC/." copies a
//    directory's contents; a missing destination is created with its name (its parent must exist);
//  - symlinks are copied as symlinks, never followed (except SRC itself with follow_link, cp -L);
//  - modes and modification times are kept; set-id bits never reach the host; files created in the sandbox
//    belong to `user` there, files created on the host to whoever runs sbox;
//  - "-" as the source is a tar stream on stdin, as the destination a tar stream on stdout;
//  - the producer and consumer of a stream run side by side (the host's half in a child process), so a
//    2 GiB file passes through with bounded memory; a failure or an interruption leaves no partial file.
#pragma once

#include <string>

#include "providers/provider.hpp"

namespace sbox {

struct CopyRequest {
    std::string host_path;    // "-": a tar stream on stdin (to_sandbox) or stdout
    std::string sandbox_path; // as typed after REF:
    bool to_sandbox = false;
    std::string user;         // owner of what is created in the sandbox (empty: root inside)
    bool follow_link = false; // -L
};

// Throws sbox::Error: not_found for a missing source, invalid/conflict for impossible combinations
// (a directory onto a file...), and whatever the provider reports.
void copy(Provider& provider, std::string_view sandbox_id, const CopyRequest& request);

} // namespace sbox
