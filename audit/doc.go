// Package audit periodically reviews every object in the cluster with the
// policy engine and writes the violations it finds into each constraint's
// status, as Gatekeeper's audit does, in parallel and in bounded memory;
// with --audit-reports it also writes every result as PolicyReports
// (package policyreport).
package audit
