// Package e2e tests the whole product the way an admin runs it: the
// pipeline wrapper (scripts/quietwatch-run) with its settings file, real
// Postfix delivering to a mailbox, real iptables in a network namespace,
// and, in TestSuricata, a real Suricata watching the server's interface
// while an attacker namespace scans it. It also tests the install, relay
// and Suricata-check scripts. The tests are Linux-only (namespaces,
// netfilter, systemd): each file says so in its build line.
package e2e
