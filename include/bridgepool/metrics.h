// MetricsRegistry: counters, gauges and histograms with labels, rendered as Prometheus text
// exposition format 0.0.4 (what GET /metrics serves). PoolMetrics (pool_metrics.h) feeds one
// from a pool's events and statistics; the text formatting itself lives in the library
// (src/telemetry/prometheus_text.*).
//
// A family (one metric name) declares its type, help and label names once, at registration.
// Its children (one per combination of label values) are looked up by label values and returned
// as handles; a handle is a pointer to atomics, so a hot path that keeps its handles pays one
// atomic add per update — no allocation, no lock, no map lookup. Label cardinality is bounded
// per label name: limit_label("command", 100) lets the first 100 distinct values through and maps
// every later one to "other", in every family that has the label. "First N" rather than a
// ranking by traffic: a series must never move between label values, or a counter would jump
// backwards in one series and forwards in another (rate() would see resets that never happened).
// Collectors (add_collector) run at scrape time, before rendering, to set gauges from snapshots.
// Thread-safety: every method may be called from any thread; handles stay valid (and harmless
// to update) for the registry's lifetime, even after remove() drops their series from the output.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bridgepool {

enum class MetricType { kCounter, kGauge, kHistogram };

namespace metrics_detail {
struct CounterCell {
  std::atomic<double> value{0};  // a double, as in the format: counters of seconds exist
};
struct GaugeCell {
  std::atomic<double> value{0};
};
struct HistogramCell {
  explicit HistogramCell(std::size_t buckets) : counts(buckets + 1) {}  // + the +Inf bucket
  std::vector<std::atomic<std::uint64_t>> counts;  // per bucket, not cumulative
  std::atomic<double> sum{0};
};
}  // namespace metrics_detail

// A counter series: only grows. A default-constructed handle ignores updates.
class Counter {
 public:
  Counter() = default;
  // Adds `by` (>= 0; a negative amount is ignored: counters never go down).
  void inc(double by = 1) const;
  // For collectors that mirror a count kept elsewhere (a PoolStats counter): sets the total.
  void set(double total) const {
    if (cell_) cell_->value.store(total, std::memory_order_relaxed);
  }
  double value() const { return cell_ ? cell_->value.load(std::memory_order_relaxed) : 0; }
  bool bound() const { return cell_ != nullptr; }  // false: default-constructed

 private:
  friend class MetricFamily;
  explicit Counter(std::shared_ptr<metrics_detail::CounterCell> cell) : cell_(std::move(cell)) {}
  std::shared_ptr<metrics_detail::CounterCell> cell_;
};

// A gauge series: a level now.
class Gauge {
 public:
  Gauge() = default;
  void set(double value) const {
    if (cell_) cell_->value.store(value, std::memory_order_relaxed);
  }
  void add(double delta) const;
  double value() const { return cell_ ? cell_->value.load(std::memory_order_relaxed) : 0; }

 private:
  friend class MetricFamily;
  explicit Gauge(std::shared_ptr<metrics_detail::GaugeCell> cell) : cell_(std::move(cell)) {}
  std::shared_ptr<metrics_detail::GaugeCell> cell_;
};

// A histogram series. observe(v) counts v in the first bucket whose upper bound is >= v
// (Prometheus `le`: less than or equal), or in +Inf; NaN only in +Inf (and the sum becomes NaN).
class Histogram {
 public:
  Histogram() = default;
  void observe(double value) const;
  std::uint64_t count() const;  // observations so far
  double sum() const;

 private:
  friend class MetricFamily;
  Histogram(std::shared_ptr<metrics_detail::HistogramCell> cell,
            std::shared_ptr<const std::vector<double>> bounds)
      : cell_(std::move(cell)), bounds_(std::move(bounds)) {}
  std::shared_ptr<metrics_detail::HistogramCell> cell_;
  std::shared_ptr<const std::vector<double>> bounds_;
};

// Default histogram buckets in seconds for calls from 50 µs to 60 s: roughly 1-2.5-5 per decade.
std::vector<double> default_latency_buckets();

struct MetricSpec {
  std::string name;  // [a-zA-Z_:][a-zA-Z0-9_:]*; counters end in _total
  std::string help;
  std::vector<std::string> label_names;  // [a-zA-Z_][a-zA-Z0-9_]*, not starting with __, no "le"
  std::vector<double> buckets;           // histograms: strictly increasing, finite; {} = default
};

class LabelLimits;

// One metric name and all its series. Obtained from MetricsRegistry; lives as long as it.
class MetricFamily {
 public:
  MetricType type() const { return type_; }
  const MetricSpec& spec() const { return spec_; }

  // The series for `label_values` (one per label name, in declaration order), created on first
  // use. Values of limited labels pass through the registry's limits first; a wrong number of
  // values aborts (a programming error). Calling the accessor of another type aborts too.
  Counter counter(const std::vector<std::string>& label_values);
  Gauge gauge(const std::vector<std::string>& label_values);
  Histogram histogram(const std::vector<std::string>& label_values);
  // Drops a series from the output (e.g. a worker that left). Returns false if absent.
  bool remove(const std::vector<std::string>& label_values);
  // Drops every series whose label `label_name` is `value` (a pool that detached). Returns how
  // many.
  std::size_t remove_where(const std::string& label_name, const std::string& value);
  std::size_t series_count() const;

  // Appends this family in text format 0.0.4 (# HELP, # TYPE, samples) to `out`.
  void render(std::string& out) const;

  MetricFamily(MetricType type, MetricSpec spec, std::shared_ptr<LabelLimits> limits);

 private:
  struct Series {
    std::shared_ptr<metrics_detail::CounterCell> counter;
    std::shared_ptr<metrics_detail::GaugeCell> gauge;
    std::shared_ptr<metrics_detail::HistogramCell> histogram;
  };
  Series& series_for(const std::vector<std::string>& label_values, MetricType wanted);
  void render_series(std::string& out, const std::string& labels, const Series& s) const;

  const MetricType type_;
  const MetricSpec spec_;
  const std::shared_ptr<const std::vector<double>> bounds_;
  const std::shared_ptr<LabelLimits> limits_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, Series> series_;  // ordered: stable output
};

// Per label name: the first N distinct values pass, later ones become "other". So do values longer
// than kMaxValueBytes, and they take no slot: a limited label's values come from callers (command
// names, unknown ones included), and 100 one-megabyte names would otherwise make every scrape
// 100 MB.
class LabelLimits {
 public:
  static constexpr const char* kOther = "other";
  static constexpr std::size_t kMaxValueBytes = 128;
  void set_limit(const std::string& label_name, std::size_t max_values);
  // The value to use for `value` under `label_name` (itself, or "other").
  std::string admit(const std::string& label_name, const std::string& value);
  // Distinct values admitted so far under `label_name`.
  std::size_t admitted(const std::string& label_name) const;

 private:
  struct Limit {
    std::size_t max_values = 0;
    std::vector<std::string> seen;  // sorted
  };
  mutable std::mutex mu_;
  std::map<std::string, Limit, std::less<>> limits_;
};

class MetricsRegistry {
 public:
  using Collector = std::function<void()>;
  using CollectorId = std::uint64_t;

  static constexpr std::size_t kDefaultCommandLimit = 100;

  // Registers (or returns the existing) family. The spec must be valid and, if the name exists,
  // identical in type, labels and buckets; otherwise aborts (metric declarations are code).
  MetricFamily& counter_family(MetricSpec spec);
  MetricFamily& gauge_family(MetricSpec spec);
  MetricFamily& histogram_family(MetricSpec spec);
  // Null if no family has that name.
  MetricFamily* find(const std::string& name) const;

  // Bounds the distinct values of `label_name` in every family (see the header paragraph).
  void limit_label(const std::string& label_name, std::size_t max_values);
  std::size_t admitted_values(const std::string& label_name) const;
  // What a series lookup would use for `value` under `label_name`: itself or "other" (and the
  // value counts as seen from now on).
  std::string admit_label_value(const std::string& label_name, const std::string& value);

  // `collector` runs at the start of every render_prometheus(), one scrape at a time. It must
  // not call render_prometheus() or add/remove collectors.
  CollectorId add_collector(Collector collector);
  bool remove_collector(CollectorId id);

  // Runs the collectors, then renders every family (in name order) in text format 0.0.4
  // (Content-Type: text/plain; version=0.0.4; charset=utf-8).
  std::string render_prometheus();

 private:
  MetricFamily& add_family(MetricType type, MetricSpec spec);

  const std::shared_ptr<LabelLimits> limits_ = std::make_shared<LabelLimits>();
  mutable std::mutex mu_;  // families_ and collectors_
  std::map<std::string, std::unique_ptr<MetricFamily>> families_;
  std::map<CollectorId, Collector> collectors_;
  CollectorId next_collector_ = 1;
  std::mutex scrape_mu_;  // one scrape at a time (collectors set shared gauges)
};

}  // namespace bridgepool
