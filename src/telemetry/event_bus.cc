#include "bridgepool/event_bus.h"

#include <exception>

#include "bridgepool/event_names.h"

namespace bridgepool {

EventBus::HandlerId EventBus::attach(std::string prefix, Handler handler) {
  std::lock_guard lock(mu_);
  auto next = std::make_shared<List>(*handlers_);
  HandlerId id = next_id_++;
  next->push_back(std::make_shared<const Entry>(Entry{id, std::move(prefix), std::move(handler)}));
  handlers_ = std::move(next);
  handler_count_.store(handlers_->size(), std::memory_order_release);
  return id;
}

bool EventBus::detach(HandlerId id) {
  std::lock_guard lock(mu_);
  auto next = std::make_shared<List>();
  bool found = false;
  for (const auto& e : *handlers_) {
    if (e->id == id) {
      found = true;
    } else {
      next->push_back(e);
    }
  }
  if (found) {
    handlers_ = std::move(next);
    handler_count_.store(handlers_->size(), std::memory_order_release);
  }
  return found;
}

std::shared_ptr<const EventBus::List> EventBus::snapshot() const {
  std::lock_guard lock(mu_);
  return handlers_;
}

void EventBus::emit(const Event& event) {
  if (!has_handlers()) return;
  // Handlers run outside the lock on a snapshot, so a handler may attach/detach or emit.
  auto list = snapshot();
  for (const auto& entry : *list) {
    if (event.name.compare(0, entry->prefix.size(), entry->prefix) != 0) continue;
    std::string failure;
    try {
      entry->handler(event);
      continue;
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "unknown exception";
    }
    detach(entry->id);
    if (event.name != event_name(EventId::kHandlerFailed)) {
      Event failed{std::string(event_name(EventId::kHandlerFailed)),
                   {{"handler_id", double(entry->id)}},
                   {{"event", event.name}, {"error", failure}, {"prefix", entry->prefix}}};
      emit(failed);
    }
  }
}

}  // namespace bridgepool
