// Package testenv is the tests' support: it starts a real kube-apiserver
// and etcd (envtest) with Portcullis's CRDs installed (Start, Run, Main),
// finds and reads the gatekeeper-library in ../shared (LibraryDir,
// Library: skipped without it, failed in CI), waits for conditions
// (Eventually, Poll), creates and deletes test objects (Create, Objects,
// Parse), reads what the manager reports (ConstraintEnforced,
// WaitEnforced), and runs kubectl and the portcullis binary.
//
// Running the manager itself is in internal/manager/managertest, which
// imports the manager: the packages the manager imports use testenv in
// their own tests. Reading the library is in internal/gklibrary, which
// imports nothing for tests, for the benchmark programs in hack/.
package testenv
