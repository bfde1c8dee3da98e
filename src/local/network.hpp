// The sandbox's network namespace. With --network none (today's only mode) it has a loopback interface,
// brought up here, and nothing else. The outbound mode of the hardening issue (pasta/slirp4netns) lands here.
#pragma once

namespace sbox::local {
void bring_up_loopback();
}
