// MetricsRegistry (metrics.h): families by name, label limits, collectors, the scrape.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "bridgepool/metrics.h"
#include "telemetry/prometheus_text.h"

namespace bridgepool {
namespace {

[[noreturn]] void bad_spec(const std::string& name, const char* what) {
  std::fprintf(stderr, "bridgepool: metric declaration %s: %s\n", name.c_str(), what);
  std::abort();
}

bool valid_buckets(const std::vector<double>& buckets) {
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i])) return false;
    if (i > 0 && !(buckets[i - 1] < buckets[i])) return false;
  }
  return true;
}

void check_spec(MetricType type, const MetricSpec& spec) {
  if (!prometheus_text::valid_metric_name(spec.name)) bad_spec(spec.name, "invalid metric name");
  for (const auto& label : spec.label_names) {
    if (!prometheus_text::valid_label_name(label)) bad_spec(spec.name, "invalid label name");
    if (type == MetricType::kHistogram && label == "le") bad_spec(spec.name, "label le reserved");
  }
  if (!valid_buckets(spec.buckets)) bad_spec(spec.name, "buckets not increasing and finite");
  if (type != MetricType::kHistogram && !spec.buckets.empty())
    bad_spec(spec.name, "buckets on a metric that is not a histogram");
}

}  // namespace

MetricFamily& MetricsRegistry::add_family(MetricType type, MetricSpec spec) {
  if (type == MetricType::kHistogram && spec.buckets.empty())
    spec.buckets = default_latency_buckets();
  check_spec(type, spec);
  std::lock_guard lock(mu_);
  auto it = families_.find(spec.name);
  if (it != families_.end()) {
    const MetricSpec& had = it->second->spec();
    if (it->second->type() != type || had.label_names != spec.label_names ||
        had.buckets != spec.buckets)
      bad_spec(spec.name, "registered twice with different type, labels or buckets");
    return *it->second;
  }
  std::string name = spec.name;
  auto family = std::make_unique<MetricFamily>(type, std::move(spec), limits_);
  return *families_.emplace(std::move(name), std::move(family)).first->second;
}

MetricFamily& MetricsRegistry::counter_family(MetricSpec spec) {
  return add_family(MetricType::kCounter, std::move(spec));
}

MetricFamily& MetricsRegistry::gauge_family(MetricSpec spec) {
  return add_family(MetricType::kGauge, std::move(spec));
}

MetricFamily& MetricsRegistry::histogram_family(MetricSpec spec) {
  return add_family(MetricType::kHistogram, std::move(spec));
}

MetricFamily* MetricsRegistry::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  return it == families_.end() ? nullptr : it->second.get();
}

void MetricsRegistry::limit_label(const std::string& label_name, std::size_t max_values) {
  limits_->set_limit(label_name, max_values);
}

std::size_t MetricsRegistry::admitted_values(const std::string& label_name) const {
  return limits_->admitted(label_name);
}

std::string MetricsRegistry::admit_label_value(const std::string& label_name,
                                               const std::string& value) {
  return limits_->admit(label_name, value);
}

MetricsRegistry::CollectorId MetricsRegistry::add_collector(Collector collector) {
  std::lock_guard lock(mu_);
  const CollectorId id = next_collector_++;
  collectors_.emplace(id, std::move(collector));
  return id;
}

bool MetricsRegistry::remove_collector(CollectorId id) {
  // Waits for a scrape in progress: once this returns, `id`'s collector is not running and will
  // not run again, so its owner may be destroyed.
  std::lock_guard scrape(scrape_mu_);
  std::lock_guard lock(mu_);
  return collectors_.erase(id) > 0;
}

std::string MetricsRegistry::render_prometheus() {
  std::lock_guard scrape(scrape_mu_);
  std::vector<Collector> collectors;
  std::vector<const MetricFamily*> families;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, c] : collectors_) collectors.push_back(c);
  }
  for (const auto& collect : collectors) collect();
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, f] : families_) families.push_back(f.get());
  }
  std::string out;
  for (const MetricFamily* f : families) f->render(out);
  return out;
}

}  // namespace bridgepool
