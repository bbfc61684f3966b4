#include "pool/worker_command.h"

#include <unistd.h>

#include <map>

extern char** environ;

namespace bridgepool {

std::vector<std::string> build_worker_env(const PoolConfig& config) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos) env[std::string(kv.substr(0, eq))] = kv.substr(eq + 1);
  }
  std::string pythonpath = config.python_path;
  if (auto it = env.find("PYTHONPATH"); it != env.end() && !it->second.empty()) {
    pythonpath += ":" + it->second;
  }
  env["PYTHONPATH"] = pythonpath;
  env["PYTHONUNBUFFERED"] = "1";  // user prints reach the pool's log as they happen
  env["BRIDGEPOOL_PARENT_PID"] = std::to_string(::getpid());
  for (const auto& [k, v] : config.env) env[k] = v;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (auto& [k, v] : env) {
    std::string entry = k;
    entry += '=';
    entry += v;
    out.push_back(std::move(entry));
  }
  return out;
}

SpawnSpec worker_spawn_spec(const PoolConfig& config, std::string_view worker_id, pid_t parent,
                            std::vector<std::string> env) {
  SpawnSpec spec;
  spec.argv.push_back(config.python);
  spec.argv.insert(spec.argv.end(), config.python_args.begin(), config.python_args.end());
  spec.argv.insert(spec.argv.end(), {"-m", "bridgepool_worker"});
  for (const auto& h : config.handlers) spec.argv.insert(spec.argv.end(), {"--handlers", h});
  spec.argv.insert(spec.argv.end(), {"--parent-pid", std::to_string(parent), "--max-frame-bytes",
                                     std::to_string(config.max_frame_bytes)});
  if (!config.version_tag.empty()) {
    spec.argv.insert(spec.argv.end(), {"--version-tag", config.version_tag});
  }
  // Everything above is the same for every worker of the pool: what a fork server loads once.
  if (config.start_method == StartMethod::kForkServer) spec.template_args = spec.argv.size();
  spec.argv.insert(spec.argv.end(), {"--worker-id", std::string(worker_id)});
  spec.env = std::move(env);
  return spec;
}

}  // namespace bridgepool
