#include "worker/worker.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include <fmt/format.h>

#include "base/clock_wait.h"

namespace bridgepool {
namespace {

// Bytes read per read(2): large enough that a typical reply arrives in one call; while a larger
// frame arrives, up to a grown pipe's capacity.
constexpr std::size_t kReadChunk = std::size_t{64} * 1024;
// A frame larger than a pipe's default 64 KiB grows both of the worker's pipes to this (the
// default /proc/sys/fs/pipe-max-size): a 64 MiB frame then crosses in 64 writes instead of 1,024,
// each a wake-up of the other side. Only workers that move large frames pay the kernel memory.
constexpr std::size_t kLargePipe = std::size_t{1} << 20;

std::size_t read_size(const wire::FrameDecoder& decoder) {
  return std::clamp(decoder.missing(), kReadChunk, kLargePipe);
}

enum class Ready { kFirst, kSecond, kTimeout };

// Waits until fd `a` has `events_a`, or fd `b` (the exit fd) is readable, or the deadline passes.
// ppoll gives microsecond resolution (poll's millisecond timeout would round short waits up).
Ready wait_for(int a, short events_a, int b, TimePoint deadline, const Clock& clock) {
  pollfd fds[2] = {{a, events_a, 0}, {b, POLLIN, 0}};
  for (;;) {
    if (deadline <= clock.now()) return Ready::kTimeout;
    auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(real_wait(clock, deadline)).count();
    timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    int rc = ::ppoll(fds, 2, &ts, nullptr);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return Ready::kSecond;  // cannot wait: treat as the process being unusable
    if (rc == 0) continue;              // re-check the deadline against the injected clock
    // Data (or HUP) on the protocol fd wins over the exit notice: a reply written just before
    // exiting (e.g. to `shutdown`) must still be read.
    if (fds[0].revents != 0) return Ready::kFirst;
    return Ready::kSecond;
  }
}

// Unread bytes left in a pipe (FIONREAD works on either end of a Linux pipe).
int pending_bytes(int fd) {
  int n = 0;
  if (fd < 0 || ::ioctl(fd, FIONREAD, &n) != 0) return 0;
  return n;
}

std::string excerpt(std::string_view s) {
  return std::string(s.substr(0, 80)) + (s.size() > 80 ? "..." : "");
}

}  // namespace

std::string_view fault_name(WorkerFault fault) {
  switch (fault) {
    case WorkerFault::kNone:
      return "none";
    case WorkerFault::kNotDelivered:
      return "not_delivered";
    case WorkerFault::kExited:
      return "exited";
    case WorkerFault::kProtocol:
      return "protocol";
    case WorkerFault::kTimeout:
      return "timeout";
  }
  return "none";
}

Worker::Worker(std::uint64_t number, std::unique_ptr<ChildProcess> process,
               std::size_t max_frame_bytes, const Clock& clock)
    : number_(number),
      id_(fmt::format("w{}", number)),
      process_(std::move(process)),
      max_frame_bytes_(max_frame_bytes),
      clock_(clock),
      decoder_(max_frame_bytes),
      machine_(clock) {}

Result<std::optional<wire::Handshake>> Worker::read_handshake() {
  auto init_error = [&](std::string message) {
    Error e(ErrorCategory::kInitialization, std::move(message));
    e.context.operation = "handshake";
    e.context.worker_id = id_;
    return tl::unexpected(std::move(e));
  };
  for (;;) {
    auto frame = decoder_.next();
    if (!frame) {
      return init_error(
          fmt::format("worker {} sent an invalid first frame: {}", id_, frame.error().message));
    }
    if (*frame) {
      auto msg = wire::decode_worker_frame((*frame)->payload, (*frame)->has_attachments);
      if (!msg) {
        return init_error(
            fmt::format("worker {} sent an invalid handshake: {}", id_, msg.error().message));
      }
      if (msg->kind == wire::WorkerMessage::Kind::kInitFailed) {
        const auto& pe = *msg->error;
        auto err = init_error(
            fmt::format("worker {} failed to load its handlers: {}: {}", id_, pe.type, pe.message));
        err.value().python = PythonError{pe.type, pe.traceback, pe.retryable};
        err.value().context.cause = pe.traceback;
        return err;
      }
      if (msg->kind != wire::WorkerMessage::Kind::kReady) {
        return init_error(fmt::format("worker {} spoke before its handshake", id_));
      }
      if (msg->handshake.protocol != wire::kProtocolVersion) {
        return init_error(fmt::format(
            "worker {} speaks protocol {} but this pool speaks protocol {}: its bridgepool_worker "
            "package is not the one this pool was built with (python_path / the installed "
            "share/bridgepool/python must match the library)",
            id_, msg->handshake.protocol, wire::kProtocolVersion));
      }
      // Other threads read the version through snapshot() (e.g. Pool::workers() listing an
      // initializing worker): publish it under the mutex.
      std::lock_guard lock(mu_);
      handshake_ = std::move(msg->handshake);
      auto version = handshake_.extra.find("handlers_version");
      if (version != handshake_.extra.end() && version->is_string()) handlers_version_ = *version;
      return std::optional<wire::Handshake>(handshake_);
    }
    ssize_t n = ::read(process_->response_fd(), decoder_.prepare(kReadChunk), kReadChunk);
    if (n > 0) {
      decoder_.commit(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return std::optional<wire::Handshake>();
    return init_error(fmt::format("worker {} (pid {}) closed its channel before the handshake ({})",
                                  id_, pid(), describe_exit()));
  }
}

std::optional<std::string> Worker::check_usable() const {
  pollfd fds[2] = {{process_->exit_fd(), POLLIN, 0}, {process_->response_fd(), POLLIN, 0}};
  int rc;
  do {
    rc = ::poll(fds, 2, 0);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return fmt::format("poll failed: {}", std::strerror(errno));
  if (fds[0].revents != 0) return fmt::format("process exited ({})", describe_exit());
  if (fds[1].revents & POLLIN) return std::string("unexpected output on the response channel");
  if (fds[1].revents != 0) return std::string("response channel closed");
  return std::nullopt;
}

CallOutcome Worker::fail(ErrorCategory category, WorkerFault fault, std::string message,
                         std::string_view command) const {
  Error e(category, std::move(message));
  e.context.operation = "execute";
  e.context.command = command;
  e.context.worker_id = id_;
  return CallOutcome{tl::unexpected(std::move(e)), fault, std::nullopt};
}

CallOutcome Worker::exited_outcome(std::string_view command, bool partial_reply) const {
  // EOF can arrive a moment before the process is a zombie (it closes its descriptors first);
  // wait briefly for the exit so the error can say how it ended.
  pollfd exit_fd{process_->exit_fd(), POLLIN, 0};
  while (::poll(&exit_fd, 1, 200) < 0 && errno == EINTR) {
  }
  // Was the request consumed? Our frame is the only thing in the request pipe, so any unread
  // byte left there means the worker never read the whole request and cannot have run it.
  int unread = pending_bytes(process_->request_fd());
  if (unread > 0) {
    return fail(ErrorCategory::kConnection, WorkerFault::kNotDelivered,
                fmt::format("worker {} (pid {}) exited before reading the request ({})", id_, pid(),
                            describe_exit()),
                command);
  }
  return fail(ErrorCategory::kConnection, WorkerFault::kExited,
              fmt::format("worker {} (pid {}) exited during request{} ({})", id_, pid(),
                          partial_reply ? " in the middle of a reply frame" : "", describe_exit()),
              command);
}

Error python_reply_error(const wire::ReplyError& pe, std::string_view command,
                         std::string_view worker_id) {
  // Errors the runtime raises about the request itself are not user-code exceptions.
  ErrorCategory category = ErrorCategory::kPython;
  if (pe.type == "UnknownCommand" || pe.type == "InvalidArguments") {
    category = ErrorCategory::kInvalidRequest;
  } else if (pe.type == "ProtocolError") {
    category = ErrorCategory::kCommunication;
  }
  Error e(category, fmt::format("{}: {}", pe.type, pe.message));
  e.context.operation = "execute";
  e.context.command = command;
  e.context.worker_id = worker_id;
  e.python = PythonError{pe.type, pe.traceback, pe.retryable};
  return e;
}

Result<void> Worker::write_frame(std::span<iovec> pieces, TimePoint deadline) {
  std::size_t first = 0;
  while (first < pieces.size()) {
    ssize_t n = ::writev(process_->request_fd(), pieces.data() + first,
                         static_cast<int>(std::min<std::size_t>(pieces.size() - first, IOV_MAX)));
    if (n > 0) {
      // Skip what was written: whole pieces, then the front of a partly written one.
      auto left = static_cast<std::size_t>(n);
      while (first < pieces.size() && left >= pieces[first].iov_len) {
        left -= pieces[first].iov_len;
        ++first;
      }
      if (left > 0) {
        pieces[first].iov_base = static_cast<char*>(pieces[first].iov_base) + left;
        pieces[first].iov_len -= left;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      // The pipe is full (request > 64 KiB, or the worker is slow to read): wait for room, but
      // also for the process to die, and for the deadline.
      Ready r = wait_for(process_->request_fd(), POLLOUT, process_->exit_fd(), deadline, clock_);
      if (r == Ready::kTimeout) return make_error(ErrorCategory::kTimeout, "writing the request");
      if (r == Ready::kSecond) return make_error(ErrorCategory::kConnection, "exited");
      continue;
    }
    // EPIPE (SIGPIPE is ignored by the pool): no reader left, the worker is gone.
    return make_error(ErrorCategory::kConnection, std::strerror(errno));
  }
  return {};
}

std::optional<CallOutcome> Worker::send(const wire::PreparedRequest& request,
                                        std::optional<std::int64_t> deadline_ms, TimePoint deadline,
                                        std::uint64_t& id) {
  id = next_request_id_++;
  const std::string head = wire::request_head(id);
  const std::string tail = wire::request_tail(deadline_ms);
  const std::size_t json = head.size() + request.middle.size() + tail.size();
  // An attachment frame: table, JSON, then each buffer after its padding (attachment_codec.h),
  // written from the caller's memory.
  wire::AttachmentLayout layout;
  if (!request.attachments.empty()) layout = wire::layout_attachments(json, request.attachments);
  const std::size_t payload = request.attachments.empty() ? json : layout.payload_size;
  if (payload > max_frame_bytes_ || request.attachments.size() > wire::kMaxAttachments) {
    return fail(ErrorCategory::kInvalidRequest, WorkerFault::kNone,
                request.attachments.size() > wire::kMaxAttachments
                    ? fmt::format("request carries {} binary values, more than the {} a frame "
                                  "may hold",
                                  request.attachments.size(), wire::kMaxAttachments)
                    : fmt::format("request of {} bytes exceeds the maximum frame size of {} bytes",
                                  payload, max_frame_bytes_),
                request.command);
  }
  const std::uint32_t declared = static_cast<std::uint32_t>(payload) |
                                 (request.attachments.empty() ? 0u : wire::kAttachmentsFlag);
  char header[wire::kFrameHeaderSize];
  for (int i = 0; i < 4; ++i) header[i] = static_cast<char>((declared >> (8 * (3 - i))) & 0xff);
  auto piece = [](const void* data, std::size_t size) {
    return iovec{const_cast<void*>(data), size};
  };
  iovec few[4] = {piece(header, sizeof header), piece(head.data(), head.size()),
                  piece(request.middle.data(), request.middle.size()),
                  piece(tail.data(), tail.size())};
  std::span<iovec> pieces(few);
  std::vector<iovec> many;  // an attachment frame's pieces (the common frame allocates none)
  if (!request.attachments.empty()) {
    many.reserve(5 + 2 * request.attachments.size());
    many.push_back(few[0]);
    many.push_back(piece(layout.table.data(), layout.table.size()));
    many.insert(many.end(), few + 1, few + 4);
    for (std::size_t i = 0; i < request.attachments.size(); ++i) {
      if (layout.padding[i] > 0) {
        many.push_back(piece(wire::attachment_padding(), layout.padding[i]));
      }
      many.push_back(piece(request.attachments[i].data(), request.attachments[i].size()));
    }
    pieces = many;
  }

  if (payload > kReadChunk && !pipes_grown_) {
    // Best effort: a refusal (EPERM past the user's pipe quota) leaves 64 KiB pipes that work.
    (void)::fcntl(process_->request_fd(), F_SETPIPE_SZ, static_cast<int>(kLargePipe));
    (void)::fcntl(process_->response_fd(), F_SETPIPE_SZ, static_cast<int>(kLargePipe));
    pipes_grown_ = true;
  }
  set_current_session(request.session_id ? *request.session_id : std::string());
  if (auto written = write_frame(pieces, deadline); !written) {
    set_current_session({});
    if (written.error().category == ErrorCategory::kTimeout) {
      return fail(ErrorCategory::kTimeout, WorkerFault::kTimeout,
                  fmt::format("worker {} did not accept the request before the deadline", id_),
                  request.command);
    }
    // The worker died before the whole frame was written, so it cannot have run the request.
    return fail(ErrorCategory::kConnection, WorkerFault::kNotDelivered,
                fmt::format("worker {} (pid {}) exited before the request was delivered ({})", id_,
                            pid(), describe_exit()),
                request.command);
  }
  return std::nullopt;
}

CallOutcome Worker::receive(std::uint64_t id, TimePoint deadline, const ChunkCallback& on_chunk,
                            std::string_view command) {
  struct ClearSession {
    Worker* w;
    ~ClearSession() { w->set_current_session({}); }
  } clear_session{this};
  return read_reply(id, deadline, on_chunk, command);
}

CallOutcome Worker::call(wire::Request& request, TimePoint deadline,
                         const ChunkCallback& on_chunk) {
  const wire::PreparedRequest prepared = wire::prepare_request(request);
  if (auto failed = send(prepared, request.deadline_ms, deadline, request.id)) {
    return std::move(*failed);
  }
  return receive(request.id, deadline, on_chunk, request.command);
}

CallOutcome Worker::read_reply(std::uint64_t id, TimePoint deadline, const ChunkCallback& on_chunk,
                               std::string_view command) {
  const int fd = process_->response_fd();
  for (;;) {
    auto frame = decoder_.next();
    if (!frame) {
      return fail(ErrorCategory::kCommunication, WorkerFault::kProtocol,
                  fmt::format("worker {} sent an invalid frame: {}", id_, frame.error().message),
                  command);
    }
    if (*frame) {
      const std::string_view payload = (*frame)->payload;
      auto msg = wire::decode_worker_frame(payload, (*frame)->has_attachments);
      if (!msg) {
        return fail(ErrorCategory::kCommunication, WorkerFault::kProtocol,
                    fmt::format("worker {} sent an invalid reply: {}", id_, msg.error().message),
                    command);
      }
      bool is_reply = msg->kind == wire::WorkerMessage::Kind::kReply;
      bool is_chunk = msg->kind == wire::WorkerMessage::Kind::kChunk;
      if ((!is_reply && !is_chunk) || msg->id != id) {
        return fail(ErrorCategory::kCommunication, WorkerFault::kProtocol,
                    fmt::format("worker {} answered request {} with a frame for id {}: {}", id_, id,
                                msg->id, excerpt(payload)),
                    command);
      }
      if (is_chunk) {
        if (on_chunk) on_chunk(msg->chunk);
        continue;
      }
      requests_.fetch_add(1, std::memory_order_relaxed);
      // Anything after the reply is not ours to read: the next borrower would get it.
      WorkerFault after = decoder_.buffered() > 0 ? WorkerFault::kProtocol : WorkerFault::kNone;
      if (msg->ok) return CallOutcome{std::move(msg->result), after, std::move(msg->unhealthy)};
      python_errors_.fetch_add(1, std::memory_order_relaxed);
      return CallOutcome{tl::unexpected(python_reply_error(*msg->error, command, id_)), after,
                         std::move(msg->unhealthy)};
    }
    const std::size_t want = read_size(decoder_);
    ssize_t n = ::read(fd, decoder_.prepare(want), want);
    if (n > 0) {
      decoder_.commit(static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return exited_outcome(command, decoder_.has_partial());
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return exited_outcome(command, decoder_.has_partial());
    Ready r = wait_for(fd, POLLIN, process_->exit_fd(), deadline, clock_);
    if (r == Ready::kTimeout) {
      return fail(ErrorCategory::kTimeout, WorkerFault::kTimeout,
                  fmt::format("worker {} (pid {}) did not reply to '{}' before the deadline", id_,
                              pid(), command),
                  command);
    }
    if (r == Ready::kSecond) {
      // Exited. Drain what it wrote before dying (a complete reply still counts).
      ssize_t last = ::read(fd, decoder_.prepare(kReadChunk), kReadChunk);
      if (last > 0) {
        decoder_.commit(static_cast<std::size_t>(last));
        continue;
      }
      return exited_outcome(command, decoder_.has_partial());
    }
  }
}

Result<Transition> Worker::transition(WorkerState to, TransitionReason reason,
                                      std::map<std::string, std::string> metadata) {
  std::lock_guard lock(mu_);
  return machine_.transition(to, reason, std::move(metadata));
}

WorkerState Worker::state() const {
  std::lock_guard lock(mu_);
  return machine_.state();
}

void Worker::set_health(WorkerHealth health) {
  std::lock_guard lock(mu_);
  machine_.set_health(health);
}

void Worker::note_ready(TimePoint at) {
  std::lock_guard lock(mu_);
  ready_at_ = at;
}

WorkerSnapshot Worker::snapshot() const {
  WorkerSnapshot s;
  s.id = id_;
  s.pid = pid();
  s.requests = requests();
  s.python_errors = python_errors_.load(std::memory_order_relaxed);
  s.failures = consecutive_failures_.load(std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  s.handlers_version = handlers_version_;
  s.current_session = current_session_;
  s.state = machine_.state();
  s.health = machine_.health();
  if (ready_at_ != TimePoint{}) s.uptime = clock_.now() - ready_at_;
  s.history.assign(machine_.history().begin(), machine_.history().end());
  return s;
}

}  // namespace bridgepool
