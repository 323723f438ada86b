package mutation

import (
	"fmt"
	"regexp"
	"strings"
)

// An image reference is domain/path:tag or domain/path@digest, each part
// optional. The parts an AssignImage sets are checked so that setting them
// converges: a value that the next pass would split differently (a path
// that reads as a domain, a tag holding a '/') would change the image on
// every pass.
var (
	// imageDomain is a host name with at least one dot, or localhost, with
	// an optional port.
	imageDomain = regexp.MustCompile(`^(?:localhost|\w[\w-]*\.[\w.-]*\w)(?::\d+)?$`)
	// imagePath is lowercase alphanumeric components joined by '.', '_',
	// "__", '/' or dashes, as in the distribution reference grammar.
	imagePath = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._/]|__|-*)[a-z0-9]+)*$`)
	// imageTag is :tag (up to 128 characters) or @algorithm:hex digest.
	imageTag = regexp.MustCompile(`^(?::\w[\w.-]{0,127}|@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})$`)
)

// image is a reference split into its parts; the tag keeps its ':' or '@'.
type image struct {
	domain, path, tag string
}

// parseImage splits a reference: the part before the first '/' is the
// domain when it holds a '.' or a ':' or is localhost; the tag starts at
// the first ':' or '@' after the domain.
func parseImage(ref string) image {
	var img image
	rest := ref
	if d, after, ok := strings.Cut(ref, "/"); ok && (strings.ContainsAny(d, ".:") || d == "localhost") {
		img.domain, rest = d, after
	}
	if i := strings.IndexAny(rest, ":@"); i >= 0 {
		img.path, img.tag = rest[:i], rest[i:]
	} else {
		img.path = rest
	}
	return img
}

func (img image) String() string {
	s := img.path + img.tag
	if img.domain != "" {
		s = img.domain + "/" + s
	}
	return s
}

// checkImageParts checks the parts an AssignImage sets; errors name the
// parameter.
func checkImageParts(domain, p, tag string) error {
	if domain == "" && p == "" && tag == "" {
		return fmt.Errorf("spec.parameters: at least one of assignDomain, assignPath and assignTag is required")
	}
	if domain != "" {
		if !imageDomain.MatchString(domain) {
			return fmt.Errorf("spec.parameters.assignDomain: %q must be a fully-qualified domain name or localhost, with an optional port and no trailing slash", domain)
		}
		if parseImage(domain+"/x").domain != domain {
			return fmt.Errorf("spec.parameters.assignDomain: %q is not read back as a domain", domain)
		}
	}
	if p != "" && !imagePath.MatchString(p) {
		return fmt.Errorf("spec.parameters.assignPath: %q must be a valid image path: lowercase letters and digits, separated by '/', '.', '_', '__' or dashes", p)
	}
	if tag != "" {
		if !imageTag.MatchString(tag) {
			return fmt.Errorf("spec.parameters.assignTag: %q must be a tag starting with ':' or a digest starting with '@'", tag)
		}
		if img := parseImage(tag); img.tag != tag || img.path != "" {
			return fmt.Errorf("spec.parameters.assignTag: %q is not read back as a tag", tag)
		}
	}
	if domain == "" && p != "" && parseImage(p).domain != "" {
		return fmt.Errorf("spec.parameters.assignPath: %q starts with what reads as a domain: set assignDomain too", p)
	}
	return nil
}
