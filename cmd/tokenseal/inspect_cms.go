package main

import (
	"bufio"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/cms"
	"github.com/urfave/cli/v2"
)

// cmsInspectJSON is the output of `inspect --json` for a CMS message.
type cmsInspectJSON struct {
	Format               string             `json:"format"`   // "cms"
	Encoding             string             `json:"encoding"` // "binary" (BER/DER), "pem" or "smime"
	IndefiniteLength     bool               `json:"indefinite_length"`
	ContentType          string             `json:"content_type"` // "authEnvelopedData" or "envelopedData"
	Version              int                `json:"version"`
	Authenticated        bool               `json:"authenticated"`
	ContentAlgorithm     string             `json:"content_algorithm"`
	EncryptedContentType string             `json:"encrypted_content_type"`
	Signed               string             `json:"signed"` // "yes" or "unknown" (until decrypted)
	ContentBytes         int64              `json:"content_bytes"`
	Recipients           []cmsRecipientJSON `json:"recipients"`
}

type cmsRecipientJSON struct {
	Type         string `json:"type"`
	Issuer       string `json:"issuer,omitempty"`
	Serial       string `json:"serial,omitempty"`
	SubjectKeyID string `json:"subject_key_id,omitempty"`
	Algorithm    string `json:"algorithm"`
	Label        string `json:"label,omitempty"`
	TrustedName  string `json:"trusted_name,omitempty"`
}

// peekCMS reports whether src starts like a CMS message; read the
// returned reader instead of src.
func peekCMS(src io.Reader) (io.Reader, bool) {
	br := bufio.NewReader(src)
	head, _ := br.Peek(64)
	return br, cms.Sniff(head)
}

// inspectCMS is inspect for a CMS message: what it shows without a key.
func inspectCMS(c *cli.Context, src io.Reader) error {
	info, err := cms.Inspect(src)
	if err != nil {
		return err
	}
	names, err := trustedNames(c)
	if err != nil {
		return err
	}
	out := describeCMS(info, names)
	if c.Bool("labels") {
		if err := cmsLabels(c, info, out); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	printCMS(c.App.Writer, out)
	return nil
}

func describeCMS(info *cms.Info, names map[envelope.KeyID]string) *cmsInspectJSON {
	out := &cmsInspectJSON{
		Format: "cms", Encoding: map[cms.Form]string{cms.FormBinary: "binary", cms.FormPEM: "pem", cms.FormSMIME: "smime"}[info.Form],
		IndefiniteLength: info.Indefinite, ContentType: info.ContentType, Version: info.Version,
		Authenticated: info.Authenticated, ContentAlgorithm: info.ContentAlgorithm,
		EncryptedContentType: info.EncryptedContentType, Signed: "unknown", ContentBytes: info.ContentLength,
		Recipients: []cmsRecipientJSON{},
	}
	if info.EncryptedContentType == "signedData" {
		out.Signed = "yes"
	}
	for _, ri := range info.Recipients {
		r := cmsRecipientJSON{Type: ri.Type, Algorithm: ri.Algorithm}
		if id := ri.ID; id != nil && id.IsIssuerAndSerial() {
			r.Issuer, r.Serial = issuerName(id.Issuer), hex.EncodeToString(id.SerialNumber.Bytes())
		} else if id != nil {
			r.SubjectKeyID = hex.EncodeToString(id.SubjectKeyID)
			var kid envelope.KeyID
			if len(id.SubjectKeyID) == len(kid) {
				copy(kid[:], id.SubjectKeyID)
				r.TrustedName = names[kid]
			}
		}
		out.Recipients = append(out.Recipients, r)
	}
	return out
}

// cmsLabels fills in the labels of the recipients that name a key on
// the token (by its certificates or its key identifiers).
func cmsLabels(c *cli.Context, info *cms.Info, out *cmsInspectJSON) error {
	kr := newKeyring(c)
	defer kr.Close()
	for i, ri := range info.Recipients {
		if ri.ID == nil {
			continue
		}
		label, err := kr.LabelOf(*ri.ID)
		if err != nil {
			return err
		}
		out.Recipients[i].Label = label
	}
	return nil
}

// issuerName is the string form of a DER Name.
func issuerName(der []byte) string {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdn); err != nil || len(rest) != 0 {
		return "(unparsable name)"
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdn)
	return n.String()
}

// printCMS prints out for people.
func printCMS(w io.Writer, out *cmsInspectJSON) {
	lengths := "definite lengths"
	if out.IndefiniteLength {
		lengths = "indefinite lengths (streamed)"
	}
	auth := "authenticated"
	if !out.Authenticated {
		auth = "NOT authenticated"
	}
	fmt.Fprintf(w, "CMS %s, version %d, %s, %s\n", out.ContentType, out.Version, out.Encoding, lengths)
	fmt.Fprintf(w, "content: %s, %d bytes of %s, %s\n", out.ContentAlgorithm, out.ContentBytes, out.EncryptedContentType, auth)
	if out.Signed == "yes" {
		fmt.Fprintln(w, "signed: yes (the signer is known only once decrypted)")
	} else {
		fmt.Fprintln(w, "signed: unknown until decrypted")
	}
	fmt.Fprintf(w, "recipients (%d):\n", len(out.Recipients))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range out.Recipients {
		id := "subjectKeyIdentifier " + r.SubjectKeyID
		switch {
		case r.Issuer != "":
			id = fmt.Sprintf("issuer %q serial %s", r.Issuer, r.Serial)
		case r.SubjectKeyID == "":
			id = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s", r.Type, id, r.Algorithm)
		if r.Label != "" {
			fmt.Fprintf(tw, "\t%s", r.Label)
		}
		if r.TrustedName != "" {
			fmt.Fprintf(tw, "\t(trusted sender %s)", r.TrustedName)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
