#include "pool/capacity.h"

#include "pool/recycle_policy.h"

namespace bridgepool {

Capacity::Capacity(std::size_t size, std::size_t max_overflow, std::size_t spare_workers,
                   RespawnBackoff backoff, GenerationPtr first_generation)
    : size_(size),
      max_overflow_(max_overflow),
      spare_workers_(spare_workers),
      backoff_(backoff),
      generation_(std::move(first_generation)) {
  counts_.generation = generation_->number;
}

std::size_t Capacity::reserve_initial(std::size_t n) {
  std::lock_guard lock(mu_);
  if (closed_) return 0;
  counts_.starting += n;
  return n;
}

std::size_t Capacity::reserve_initial_spares() {
  std::lock_guard lock(mu_);
  if (closed_) return 0;
  counts_.spares_starting += spare_workers_;
  return spare_workers_;
}

std::uint64_t Capacity::next_worker_number() {
  std::lock_guard lock(mu_);
  return next_number_++;
}

bool Capacity::on_started(StartRole role) {
  std::lock_guard lock(mu_);
  const bool spare = role == StartRole::kSpare;
  --(spare ? counts_.spares_starting : counts_.starting);
  if (closed_) return false;
  ++(spare ? counts_.spares : counts_.in_service);
  ++counts_.started;
  counts_.consecutive_init_failures = 0;
  return true;
}

std::optional<std::chrono::milliseconds> Capacity::replacement_locked() {
  if (closed_ || counts_.in_service + counts_.starting >= size_) return std::nullopt;
  ++counts_.starting;  // counted with the decision, under the same lock
  return backoff_.delay(counts_.consecutive_init_failures);
}

std::optional<std::chrono::milliseconds> Capacity::spare_replacement_locked() {
  if (closed_ || counts_.spares + counts_.spares_starting >= spare_workers_) return std::nullopt;
  ++counts_.spares_starting;
  return backoff_.delay(counts_.consecutive_init_failures);
}

std::optional<std::chrono::milliseconds> Capacity::on_start_failed(const Error& error,
                                                                   std::uint64_t generation,
                                                                   StartRole role) {
  std::lock_guard lock(mu_);
  const bool spare = role == StartRole::kSpare;
  --(spare ? counts_.spares_starting : counts_.starting);
  ++counts_.init_failures;
  ++counts_.consecutive_init_failures;
  counts_.last_init_error = error;
  counts_.last_failed_generation = generation;
  return spare ? spare_replacement_locked() : replacement_locked();
}

std::optional<std::chrono::milliseconds> Capacity::on_removed(StartRole role, bool ends_recycle) {
  std::lock_guard lock(mu_);
  if (ends_recycle && recycles_reserved_ > 0) --recycles_reserved_;
  if (role == StartRole::kSpare) {
    --counts_.spares;
    return spare_replacement_locked();
  }
  --counts_.in_service;
  auto delay = replacement_locked();
  if (delay) ++counts_.replaced;
  return delay;
}

std::optional<std::chrono::milliseconds> Capacity::on_promoted() {
  std::lock_guard lock(mu_);
  --counts_.spares;
  --counts_.starting;  // the counted start the spare stands in for
  ++counts_.in_service;
  ++counts_.spare_promotions;
  return spare_replacement_locked();
}

void Capacity::cancel_start(StartRole role) {
  std::lock_guard lock(mu_);
  --(role == StartRole::kSpare ? counts_.spares_starting : counts_.starting);
}

bool Capacity::try_grow() {
  std::lock_guard lock(mu_);
  if (closed_ || counts_.in_service + counts_.starting >= size_ + max_overflow_) return false;
  ++counts_.starting;
  return true;
}

std::optional<Error> Capacity::failing_starts() const {
  std::lock_guard lock(mu_);
  if (counts_.consecutive_init_failures == 0 || !counts_.last_init_error) return std::nullopt;
  return counts_.last_init_error;
}

bool Capacity::all_down() const {
  std::lock_guard lock(mu_);
  return counts_.in_service == 0 &&
         (counts_.starting == 0 || counts_.consecutive_init_failures > 0);
}

bool Capacity::try_begin_recycle() {
  std::lock_guard lock(mu_);
  if (!RecyclePolicy::may_recycle_now(counts_.in_service, size_,
                                      counts_.starting + recycles_reserved_)) {
    return false;
  }
  ++recycles_reserved_;
  return true;
}

void Capacity::end_recycle() {
  std::lock_guard lock(mu_);
  if (recycles_reserved_ > 0) --recycles_reserved_;
}

GenerationPtr Capacity::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

GenerationPtr Capacity::install_generation(GenerationPtr next) {
  std::lock_guard lock(mu_);
  counts_.generation = next->number;
  return std::exchange(generation_, std::move(next));
}

void Capacity::restore_generation(GenerationPtr previous) {
  std::lock_guard lock(mu_);
  counts_.generation = previous->number;
  generation_ = std::move(previous);
}

void Capacity::close() {
  std::lock_guard lock(mu_);
  closed_.store(true, std::memory_order_release);
}

CapacitySnapshot Capacity::snapshot() const {
  std::lock_guard lock(mu_);
  return counts_;
}

}  // namespace bridgepool
