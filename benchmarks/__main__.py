"""`python -m benchmarks`: run every benchmark with its defaults."""

from benchmarks import backup, fleet, http, moves, peers, provisioning, request_cost, rollout, scope

if __name__ == "__main__":
    provisioning.main([])
    peers.main([])
    scope.main([])
    backup.main([])
    moves.main([])
    rollout.main([])
    request_cost.main([])
    http.main([])
    fleet.main([])
