package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/replication"
)

// The endpoints that change a Raft cluster's membership: removing a node and rebalancing
// the data groups. Each makes one call to the controller (which goes to its leader) and
// answers once the change is recorded; the data groups then move in the background and
// GET /v1/cluster shows them.

// ChangeTimeout bounds how long a cluster change (POST /v1/cluster/nodes/{id}/remove,
// POST /v1/cluster/rebalance) waits for the controller to record it, not for the data
// groups to move.
const ChangeTimeout = 30 * time.Second

// notRaftCluster starts the 400 answer of a change asked of a node that is not part of a
// Raft cluster (its controller cannot move data groups).
const notRaftCluster = "this node is not part of a Raft cluster: "

// removeAnswer is the JSON body of POST /v1/cluster/nodes/{id}/remove.
type removeAnswer struct {
	NodeID  replication.NodeID `json:"node_id"`
	Status  string             `json:"status,omitempty"` // "removing" on success
	Message string             `json:"message,omitempty"`
	Error   string             `json:"error,omitempty"`
}

// rebalanceAnswer is the JSON body of POST /v1/cluster/rebalance on success.
type rebalanceAnswer struct {
	Status  string                          `json:"status"` // "rebalancing", or "balanced" when nothing moves
	Moves   map[string][]replication.NodeID `json:"moves"`  // group name -> its new members
	Message string                          `json:"message,omitempty"`
}

// errorAnswer is the JSON body of a refused request that names nothing else.
type errorAnswer struct {
	Error string `json:"error"`
}

// removeNode asks the controller to remove a node: its data groups move to other nodes,
// then it leaves the cluster. 202 once the removal is recorded.
func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 32)
	if err != nil || id < 0 {
		writeJSON(w, http.StatusBadRequest, removeAnswer{NodeID: -1, Error: fmt.Sprintf("node ID %q is not a non-negative integer", r.PathValue("id"))})
		return
	}
	node := replication.NodeID(id)
	remover, ok := s.cfg.Controller.(replication.NodeRemover)
	if !ok {
		writeJSON(w, http.StatusBadRequest, removeAnswer{NodeID: node, Error: notRaftCluster + "a single node has no other node to move its data to"})
		return
	}
	code, msg := s.change(r, fmt.Sprintf("remove node %d", node), func(ctx context.Context) error {
		return remover.RemoveNode(ctx, node)
	})
	if code != 0 {
		writeJSON(w, code, removeAnswer{NodeID: node, Error: msg})
		return
	}
	s.cfg.Logger.Info("admin: node removal started", zap.Int32("node", int32(node)), zap.String("from", r.RemoteAddr))
	writeJSON(w, http.StatusAccepted, removeAnswer{NodeID: node, Status: "removing",
		Message: fmt.Sprintf("node %d is being removed: its data groups move to other nodes, then it leaves the cluster; GET /v1/cluster shows the moves", node)})
}

// rebalance asks the controller to spread the data groups' memberships evenly over the
// nodes (after one joined). 202 with the moves started, 200 when there is nothing to move.
func (s *Server) rebalance(w http.ResponseWriter, r *http.Request) {
	rb, ok := s.cfg.Controller.(replication.Rebalancer)
	if !ok {
		writeJSON(w, http.StatusBadRequest, errorAnswer{Error: notRaftCluster + "a single node has no data groups to spread"})
		return
	}
	var moves map[string][]replication.NodeID
	code, msg := s.change(r, "rebalance the data groups", func(ctx context.Context) (err error) {
		moves, err = rb.Rebalance(ctx)
		return err
	})
	if code != 0 {
		writeJSON(w, code, errorAnswer{Error: msg})
		return
	}
	if len(moves) == 0 {
		writeJSON(w, http.StatusOK, rebalanceAnswer{Status: "balanced", Moves: map[string][]replication.NodeID{},
			Message: "the data groups are already balanced: the nodes' group counts differ by one at most (or groups are still moving); nothing to move"})
		return
	}
	names := make([]string, 0, len(moves))
	for name := range moves {
		names = append(names, name)
	}
	slices.Sort(names)
	s.cfg.Logger.Info("admin: rebalance started", zap.Strings("groups", names), zap.String("from", r.RemoteAddr))
	writeJSON(w, http.StatusAccepted, rebalanceAnswer{Status: "rebalancing", Moves: moves,
		Message: fmt.Sprintf("%d data groups are moving to their new members; GET /v1/cluster shows the moves", len(moves))})
}

// change makes call, one call to the controller that changes the cluster, within
// ChangeTimeout. It returns 0 on success; else it logs the error and returns the status
// and message to answer with. what names the change: "remove node 3".
func (s *Server) change(r *http.Request, what string, call func(ctx context.Context) error) (int, string) {
	ctx, cancel := context.WithTimeout(r.Context(), ChangeTimeout)
	defer cancel()
	err := call(ctx)
	if err == nil {
		return 0, ""
	}
	code, msg := changeError(what, err)
	s.cfg.Logger.Warn("admin: "+what+" failed", zap.Int("status", code), zap.Error(err))
	return code, msg
}

// changeError maps the error of a cluster change to an HTTP status and a message for an
// operator.
func changeError(what string, err error) (int, string) {
	switch {
	case errors.Is(err, replication.ErrUnknownNode):
		return http.StatusNotFound, fmt.Sprintf("cannot %s: the node is not in the cluster: %v", what, err)
	case errors.Is(err, replication.ErrNotEnoughNodes):
		return http.StatusConflict, fmt.Sprintf("cannot %s: some data groups have no other node to move to; add a node first: %v", what, err)
	case errors.Is(err, replication.ErrInvalid):
		return http.StatusBadRequest, fmt.Sprintf("cannot %s: %v", what, err)
	case errors.Is(err, replication.ErrNotLeader), errors.Is(err, replication.ErrOutcomeUnknown),
		errors.Is(err, replication.ErrControllerClosed), errors.Is(err, replication.ErrTransportClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, fmt.Sprintf("%s: the controller did not confirm it (no leader, or it timed out); GET /v1/cluster shows whether it started, else retry: %v", what, err)
	default:
		return http.StatusInternalServerError, fmt.Sprintf("%s: %v", what, err)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
