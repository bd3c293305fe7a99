"""The reconcile of one service and what drives it: snapshot, plan, promote, queue, timers."""
