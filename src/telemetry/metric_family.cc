// MetricFamily and its series handles (metrics.h): lookup by label values, atomic updates,
// rendering in text format 0.0.4.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "bridgepool/metrics.h"
#include "telemetry/prometheus_text.h"

namespace bridgepool {
namespace {

[[noreturn]] void misuse(const std::string& family, const char* what) {
  std::fprintf(stderr, "bridgepool: metric %s: %s\n", family.c_str(), what);
  std::abort();
}

void atomic_add(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

const char* type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

void Counter::inc(double by) const {
  if (cell_ && by > 0) atomic_add(cell_->value, by);
}

void Gauge::add(double delta) const {
  if (cell_) atomic_add(cell_->value, delta);
}

namespace {

// Index of the first bound >= value (`le` buckets), bounds.size() for +Inf. A linear scan: bucket
// lists are short (the default has 19) and most observations are small, so it stops within the
// first cache line where a binary search would touch three. NaN is no number of seconds: every
// comparison with it is false, so it falls through to +Inf.
std::size_t bucket_of(const std::vector<double>& bounds, double value) {
  std::size_t i = 0;
  while (i < bounds.size() && !(value <= bounds[i])) ++i;
  return i;
}

}  // namespace

void Histogram::observe(double value) const {
  if (!cell_) return;
  cell_->counts[bucket_of(*bounds_, value)].fetch_add(1, std::memory_order_relaxed);
  atomic_add(cell_->sum, value);
}

std::uint64_t Histogram::count() const {
  std::uint64_t total = 0;
  if (cell_) {
    for (const auto& c : cell_->counts) total += c.load(std::memory_order_relaxed);
  }
  return total;
}

double Histogram::sum() const { return cell_ ? cell_->sum.load(std::memory_order_relaxed) : 0; }

namespace {

// Every family with the default buckets shares one copy: fewer cache lines on a call's path.
std::shared_ptr<const std::vector<double>> shared_bounds(const std::vector<double>& buckets) {
  static const auto kDefault =
      std::make_shared<const std::vector<double>>(default_latency_buckets());
  return buckets == *kDefault ? kDefault : std::make_shared<const std::vector<double>>(buckets);
}

}  // namespace

std::vector<double> default_latency_buckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,     0.25,   0.5,     1,      2.5,   5,      10,    30,   60};
}

MetricFamily::MetricFamily(MetricType type, MetricSpec spec, std::shared_ptr<LabelLimits> limits)
    : type_(type),
      spec_(std::move(spec)),
      bounds_(shared_bounds(spec_.buckets)),
      limits_(std::move(limits)) {}

MetricFamily::Series& MetricFamily::series_for(const std::vector<std::string>& label_values,
                                               MetricType wanted) {
  if (wanted != type_) misuse(spec_.name, "accessed as another metric type");
  if (label_values.size() != spec_.label_names.size()) misuse(spec_.name, "wrong label count");
  std::vector<std::string> key;
  key.reserve(label_values.size());
  for (std::size_t i = 0; i < label_values.size(); ++i) {
    key.push_back(limits_->admit(spec_.label_names[i], label_values[i]));
  }
  std::lock_guard lock(mu_);
  auto [it, inserted] = series_.try_emplace(std::move(key));
  if (inserted) {
    Series& s = it->second;
    if (type_ == MetricType::kCounter) s.counter = std::make_shared<metrics_detail::CounterCell>();
    if (type_ == MetricType::kGauge) s.gauge = std::make_shared<metrics_detail::GaugeCell>();
    if (type_ == MetricType::kHistogram)
      s.histogram = std::make_shared<metrics_detail::HistogramCell>(bounds_->size());
  }
  return it->second;
}

Counter MetricFamily::counter(const std::vector<std::string>& label_values) {
  return Counter(series_for(label_values, MetricType::kCounter).counter);
}

Gauge MetricFamily::gauge(const std::vector<std::string>& label_values) {
  return Gauge(series_for(label_values, MetricType::kGauge).gauge);
}

Histogram MetricFamily::histogram(const std::vector<std::string>& label_values) {
  return Histogram(series_for(label_values, MetricType::kHistogram).histogram, bounds_);
}

bool MetricFamily::remove(const std::vector<std::string>& label_values) {
  std::lock_guard lock(mu_);
  return series_.erase(label_values) > 0;
}

std::size_t MetricFamily::remove_where(const std::string& label_name, const std::string& value) {
  auto label = std::find(spec_.label_names.begin(), spec_.label_names.end(), label_name);
  if (label == spec_.label_names.end()) return 0;
  const auto index = static_cast<std::size_t>(label - spec_.label_names.begin());
  std::lock_guard lock(mu_);
  return std::erase_if(series_, [&](const auto& s) { return s.first[index] == value; });
}

std::size_t MetricFamily::series_count() const {
  std::lock_guard lock(mu_);
  return series_.size();
}

void MetricFamily::render_series(std::string& out, const std::string& labels,
                                 const Series& s) const {
  using prometheus_text::append_number;
  const std::string& name = spec_.name;
  if (s.counter || s.gauge) {
    out += name + labels + ' ';
    if (s.counter) append_number(out, s.counter->value.load(std::memory_order_relaxed));
    if (s.gauge) append_number(out, s.gauge->value.load(std::memory_order_relaxed));
    out += '\n';
    return;
  }
  // Buckets are cumulated here; _count is the +Inf bucket, so the two always agree.
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_->size(); ++i) {
    cumulative += s.histogram->counts[i].load(std::memory_order_relaxed);
    std::string le = "+Inf";
    if (i < bounds_->size()) {
      le.clear();
      append_number(le, (*bounds_)[i]);
    }
    out += name + "_bucket" + prometheus_text::with_label(labels, "le", le) + ' ';
    append_number(out, cumulative);
    out += '\n';
  }
  out += name + "_sum" + labels + ' ';
  append_number(out, s.histogram->sum.load(std::memory_order_relaxed));
  out += '\n' + name + "_count" + labels + ' ';
  append_number(out, cumulative);
  out += '\n';
}

void MetricFamily::render(std::string& out) const {
  out += "# HELP " + spec_.name + ' ';
  prometheus_text::append_help(out, spec_.help);
  out += "\n# TYPE " + spec_.name + ' ' + type_name(type_) + '\n';
  std::lock_guard lock(mu_);
  for (const auto& [values, series] : series_) {
    render_series(out, prometheus_text::format_labels(spec_.label_names, values), series);
  }
}

}  // namespace bridgepool
