package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// rawPage is one page of a List with its items still JSON: about a third
// of their size decoded, so that the next page can be fetched while the
// workers review this one without holding two decoded pages. Workers
// decode the items, in parallel.
type rawPage struct {
	Metadata metav1.ListMeta   `json:"metadata"`
	Items    []json.RawMessage `json:"items"`
}

// item is one object to review, as listed.
type item struct {
	raw json.RawMessage
	res *resource
}

// decode returns the object of an item. Items of built-in lists carry no
// apiVersion and kind: they are set from the resource.
func (it item) decode() (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := utiljson.Unmarshal(it.raw, &u.Object); err != nil {
		return nil, fmt.Errorf("decoding a %s: %w", it.res.gvr.String(), err)
	}
	if u.Object == nil {
		return nil, fmt.Errorf("decoding a %s: null item", it.res.gvr.String())
	}
	if u.GetKind() == "" {
		u.SetKind(it.res.kind)
	}
	if u.GetAPIVersion() == "" {
		u.SetAPIVersion(it.res.gvr.GroupVersion().String())
	}
	return u, nil
}

// pages lists gvr across all namespaces a page at a time, calling each
// on every page.
func (r *run) pages(ctx context.Context, gvr schema.GroupVersionResource, each func(*unstructured.UnstructuredList) error) (int, error) {
	client := r.a.dynamic.Resource(gvr)
	fetch := func(ctx context.Context, cont string) (*unstructured.UnstructuredList, string, error) {
		list, err := client.List(ctx, metav1.ListOptions{Limit: r.a.opts.ChunkSize, Continue: cont})
		if err != nil {
			return nil, "", err
		}
		next := list.GetContinue()
		return list, next, nil
	}
	return listPages(ctx, r.log, gvr, fetch, each)
}

// rawPages lists gvr across all namespaces a page at a time, calling each
// with every page, as pages does, without decoding the items.
func (r *run) rawPages(ctx context.Context, gvr schema.GroupVersionResource, each func(*rawPage) error) (int, error) {
	var segments []string
	if gvr.Group == "" {
		segments = []string{"/api", gvr.Version, gvr.Resource}
	} else {
		segments = []string{"/apis", gvr.Group, gvr.Version, gvr.Resource}
	}
	fetch := func(ctx context.Context, cont string) (*rawPage, string, error) {
		req := r.a.rest.Get().AbsPath(segments...)
		if r.a.opts.ChunkSize > 0 {
			req = req.Param("limit", strconv.FormatInt(r.a.opts.ChunkSize, 10))
		}
		if cont != "" {
			req = req.Param("continue", cont)
		}
		body, err := req.Do(ctx).Raw()
		if err != nil {
			return nil, "", err
		}
		page := &rawPage{}
		if err := json.Unmarshal(body, page); err != nil {
			return nil, "", fmt.Errorf("decoding: %w", err)
		}
		return page, page.Metadata.Continue, nil
	}
	return listPages(ctx, r.log, gvr, fetch, each)
}

// listPages is the pager of pages and rawPages. fetch gets the page that
// the continue token cont starts (the first for ""), with the token of the
// page after it ("" after the last); each is called on every page, and the
// pages listed are counted. A kind no longer served lists nothing. A
// continue token that expired during a long list is followed by the
// server's inconsistent continuation: the rest is listed at a newer
// version, nothing is listed twice.
func listPages[P any](ctx context.Context, log logr.Logger, gvr schema.GroupVersionResource,
	fetch func(ctx context.Context, cont string) (P, string, error), each func(P) error) (int, error) {
	cont := ""
	n := 0
	for {
		page, next, err := fetch(ctx, cont)
		if apierrors.IsNotFound(err) {
			// The kind went away (its CRD was deleted): nothing to list.
			log.V(1).Info("Kind no longer served", "resource", gvr.String())
			return n, nil
		}
		if err != nil {
			var status apierrors.APIStatus
			if apierrors.IsResourceExpired(err) && errors.As(err, &status) && status.Status().Continue != "" {
				log.Info("List continuation expired; continuing at a newer version", "resource", gvr.String(), "pages", n)
				cont = status.Status().Continue
				continue
			}
			return n, fmt.Errorf("listing %s (page %d): %w", gvr.String(), n+1, err)
		}
		n++
		if err := each(page); err != nil {
			return n, err
		}
		if next == "" {
			return n, nil
		}
		cont = next
	}
}
