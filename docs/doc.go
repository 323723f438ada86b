// Package docs holds the user documentation, in Markdown, and the test that
// runs every command shown in it (see README.md, "Conventions").
package docs
