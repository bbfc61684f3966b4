#include "bridgepool/event_bus.h"

#include <exception>
#include <type_traits>

#include "bridgepool/event_names.h"

namespace bridgepool {

static_assert(kEvents.size() <= 64, "EventBus::interest_ has one bit per event");

void EventBus::publish(std::shared_ptr<const List> handlers) {
  std::uint64_t interest = 0;
  for (const auto& e : *handlers) {
    for (std::size_t i = 0; i < kEvents.size(); ++i) {
      if (kEvents[i].name.substr(0, e->prefix.size()) == e->prefix) interest |= 1ull << i;
    }
  }
  handlers_ = std::move(handlers);
  interest_.store(interest, std::memory_order_release);
  handler_count_.store(handlers_->size(), std::memory_order_release);
}

EventBus::HandlerId EventBus::attach(std::string prefix, Handler handler) {
  std::lock_guard lock(mu_);
  auto next = std::make_shared<List>(*handlers_);
  HandlerId id = next_id_++;
  next->push_back(std::make_shared<const Entry>(Entry{id, std::move(prefix), std::move(handler)}));
  publish(std::move(next));
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
  if (found) publish(std::move(next));
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

EventBus::HandlerId EventBus::add_observer(std::shared_ptr<CallObserver> observer) {
  std::lock_guard lock(mu_);
  auto next = std::make_shared<ObserverList>(*observers_);
  const HandlerId id = next_id_++;
  next->push_back(Observer{id, std::move(observer)});
  observers_ = std::move(next);
  observer_count_.store(observers_->size(), std::memory_order_release);
  return id;
}

bool EventBus::remove_observer(HandlerId id) {
  std::lock_guard lock(mu_);
  auto next = std::make_shared<ObserverList>();
  for (const auto& o : *observers_) {
    if (o.id != id) next->push_back(o);
  }
  const bool found = next->size() != observers_->size();
  if (found) {
    observers_ = std::move(next);
    observer_count_.store(observers_->size(), std::memory_order_release);
  }
  return found;
}

std::shared_ptr<const EventBus::ObserverList> EventBus::observers() const {
  std::lock_guard lock(mu_);
  return observers_;
}

template <typename Record>
void EventBus::deliver(const Record& record) {
  if (!observing()) return;
  auto list = observers();  // outside the lock, as for handlers
  for (const auto& o : *list) {
    std::string failure;
    try {
      if constexpr (std::is_same_v<Record, CallObservation>) {
        o.observer->on_call(record);
      } else {
        o.observer->on_transition(record);
      }
      continue;
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "unknown exception";
    }
    remove_observer(o.id);
    emit(Event{std::string(event_name(EventId::kHandlerFailed)),
               {{"handler_id", double(o.id)}},
               {{"event", "observer"}, {"error", failure}}});
  }
}

void EventBus::observe(const CallObservation& call) { deliver(call); }
void EventBus::observe(const TransitionObservation& transition) { deliver(transition); }

}  // namespace bridgepool
