#include "providers/guard.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <vector>

namespace sbox {

struct SandboxGuard::State {
    std::mutex mutex;
    Provider* provider = nullptr; // null: no sandbox is guarded, only signals caught
    std::string id;               // empty until create returned
    bool removed = false;
    int signal = 0;
};

namespace {

constexpr const auto& watched_signals = kGuardedSignals;

using RunState = SandboxGuard::State;

// Removes the sandbox once; errors (and "already gone") are swallowed: this is cleanup.
void remove_quietly(RunState& st) {
    if (st.removed || st.id.empty() || st.provider == nullptr) return;
    st.removed = true;
    try {
        st.provider->kill(st.id);
    } catch (...) {
    }
}

class InterruptHub {
  public:
    static InterruptHub& instance() {
        static InterruptHub hub; // constructed on first run, not at start-up
        return hub;
    }

    void enter(const std::shared_ptr<RunState>& st) {
        std::lock_guard lock(mutex_);
        if (runs_.empty()) install();
        runs_.push_back(st);
        int pending = pending_.load();
        if (pending != 0) {
            std::lock_guard l(st->mutex);
            st->signal = pending;
        }
    }

    void leave(const std::shared_ptr<RunState>& st) {
        std::lock_guard lock(mutex_);
        std::erase(runs_, st);
        if (runs_.empty()) uninstall();
    }

  private:
    static void on_signal(int sig) {
        int saved = errno;
        int expected = 0;
        pending_.compare_exchange_strong(expected, sig);
        char byte = static_cast<char>(sig);
        [[maybe_unused]] auto n = ::write(write_fd_.load(), &byte, 1);
        errno = saved;
    }

    void install() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return; // without the pipe, signals keep their default effect
        read_fd_ = fds[0];
        write_fd_.store(fds[1]);
        pending_.store(0);
        watcher_ = std::thread([this, fd = fds[0]] { watch(fd); });
        for (std::size_t i = 0; i < std::size(watched_signals); ++i) {
            struct sigaction old {};
            ::sigaction(watched_signals[i], nullptr, &old);
            saved_[i] = old;
            installed_[i] = old.sa_handler != SIG_IGN;
            if (!installed_[i]) continue;
            struct sigaction sa {};
            sa.sa_handler = &InterruptHub::on_signal;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESTART;
            ::sigaction(watched_signals[i], &sa, nullptr);
        }
        active_ = true;
    }

    void uninstall() {
        if (!active_) return;
        for (std::size_t i = 0; i < std::size(watched_signals); ++i)
            if (installed_[i]) ::sigaction(watched_signals[i], &saved_[i], nullptr);
        char quit = 0;
        [[maybe_unused]] auto n = ::write(write_fd_.load(), &quit, 1);
        watcher_.join();
        ::close(write_fd_.exchange(-1));
        ::close(read_fd_);
        read_fd_ = -1;
        active_ = false;
    }

    void watch(int fd) {
        for (;;) {
            char byte = 0;
            ssize_t n = ::read(fd, &byte, 1);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0 || byte == 0) return;
            std::vector<std::shared_ptr<RunState>> runs;
            {
                std::lock_guard lock(mutex_);
                runs = runs_;
            }
            // In parallel: a remote provider takes a round trip per sandbox, and a benchmark may hold many.
            std::vector<std::thread> removers;
            for (auto& st : runs)
                removers.emplace_back([st, byte] {
                    std::lock_guard l(st->mutex);
                    if (st->signal == 0) st->signal = static_cast<unsigned char>(byte);
                    remove_quietly(*st);
                });
            for (auto& t : removers)
                t.join();
        }
    }

    std::mutex mutex_;
    std::vector<std::shared_ptr<RunState>> runs_;
    std::thread watcher_;
    int read_fd_ = -1;
    static inline std::atomic<int> write_fd_{-1};
    static inline std::atomic<int> pending_{0};
    struct sigaction saved_[std::size(watched_signals)]{};
    bool installed_[std::size(watched_signals)] = {};
    bool active_ = false;
};

} // namespace

SandboxGuard::SandboxGuard() : state_(std::make_shared<State>()) {
    InterruptHub::instance().enter(state_);
}

SandboxGuard::SandboxGuard(Provider& provider) : state_(std::make_shared<State>()) {
    state_->provider = &provider;
    InterruptHub::instance().enter(state_);
}

SandboxGuard::~SandboxGuard() {
    {
        std::lock_guard l(state_->mutex);
        remove_quietly(*state_);
    }
    InterruptHub::instance().leave(state_);
}

int SandboxGuard::created(const std::string& id) {
    std::lock_guard l(state_->mutex);
    state_->id = id;
    if (state_->signal != 0) remove_quietly(*state_);
    return state_->signal;
}

int SandboxGuard::signal() const {
    std::lock_guard l(state_->mutex);
    return state_->signal;
}

void SandboxGuard::release() {
    std::lock_guard l(state_->mutex);
    state_->removed = true;
}

void SandboxGuard::remove() {
    std::lock_guard l(state_->mutex);
    if (state_->removed || state_->id.empty() || state_->provider == nullptr) return;
    state_->removed = true;
    try {
        state_->provider->kill(state_->id);
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::not_found) throw;
    }
}

} // namespace sbox
