"""`python -m benchmarks`: run every benchmark with its defaults."""

from benchmarks import backup, fleet, http, peers, provisioning, request_cost, rollout, scope

if __name__ == "__main__":
    provisioning.main([])
    peers.main([])
    scope.main([])
    backup.main([])
    rollout.main([])
    request_cost.main([])
    http.main([])
    fleet.main([])
