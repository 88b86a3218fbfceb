"""The names of the job's counters, defined once: the steps count under these names and the report reads
them, so a misspelt name is an import error instead of a funnel row that silently reads 0.

A name ending in "." is a prefix: the producer appends what varies (a page source, an error class, an
outcome). Beam-free, so readers, doc_steps, beam_steps and the report all import it.
"""

# ---------------------------------------------------------------- reading (pipeline.readers, ReadInputs)

READ = "read."  # every reading counter; the report lists those that are not tallies as losses
READ_FILES = "read.files."  # + input kind: files opened
READ_PAGES = "read.pages."  # + page source: pages passed on to the minimizer
READ_WARC_RECORD = "read.warc_"  # + WARC-Type: records read
READ_ARC_RECORD = "read.arc_record"
READ_TALLIES = (READ_FILES, READ_PAGES, READ_WARC_RECORD, READ_ARC_RECORD)  # what was read, not lost
READ_PAGES_OVER_LIMIT = "read.pages_over_limit"
READ_UNKNOWN_FILE_TYPE = "read.skipped_unknown_file_type"
READ_UNREADABLE_FILE = "read.unreadable_file."  # + input kind
READ_NOT_HTML_OR_IMAGE = "read.skipped_not_html_or_image"
READ_RECORD_WITHOUT_URI = "read.record_without_uri"
READ_HTTP_STATUS = "read.skipped_http_status"
READ_BAD_HTTP_RESPONSE = "read.bad_http_response"
READ_BROKEN_GZIP_MEMBER = "read.broken_gzip_member"
READ_RECORD_OVER_SIZE_CAP = "read.record_over_size_cap"
READ_DECODED_RECORD_OVER_SIZE_CAP = "read.decoded_record_over_size_cap"  # a br/gzip/deflate body past the cap
READ_RECORD_START_INSIDE_DAMAGED_RECORD = "read.record_start_inside_damaged_record"  # resync skipped it
READ_BROKEN_RECORD = "read.broken_or_truncated_record"
READ_TOO_MANY_BROKEN_RECORDS = "read.too_many_broken_records"
READ_UNKNOWN_WARC_TYPE = "read.unknown_warc_type"
READ_BAD_RECORD = "read.bad_record"
READ_BAD_WIKIPEDIA_LINE = "read.bad_wikipedia_line"

# ---------------------------------------------------------------- minimize + C4 (pipeline.doc_steps)

MINIMIZE_OK = "minimize.ok"
MINIMIZE_ERROR = "minimize.error."  # + MinimizeError subclass name
MINIMIZE_UNEXPECTED = MINIMIZE_ERROR + "unexpected"  # the minimizer crashed (logged)
MINIMIZE_REMOVED = "minimize.removed."  # + minimizer rule
C4 = "c4."  # + a C4Stats name of c4_filters ("page:bad_words", "line:too_few_words", ...)
C4_PAGE = C4 + "page:"  # + page rule: the page was dropped (or read / kept, the tallies below)
C4_PAGE_TALLIES = (":read", ":kept")
C4_LANGUAGE = C4 + "language:"  # + "<code>:kept" | "<code>:dropped"
C4_UNEXPECTED = C4 + "error.unexpected"  # the C4 rules crashed (logged)
C4_KEPT = C4 + "kept"
C4_DROPPED = C4 + "dropped"

# ---------------------------------------------------------------- de-duplication

URL_DUPLICATES_DROPPED = "dedup.url_duplicates_dropped"
NEAR_DUP_DOCS_DROPPED = "dedup.near_dup_docs_dropped"
SPAN_DOCS_TOUCHED = "dedup.span_docs_touched"
SPAN_SENTENCES_DROPPED = "dedup.span_sentences_dropped"
SPAN_BLOCKS_DROPPED = "dedup.span_blocks_dropped"
SPAN_DOCS_DROPPED = "dedup.span_docs_dropped"

# ---------------------------------------------------------------- images

IMAGES_UNIQUE = "images.unique"  # image URLs referenced by a document
IMAGES_RECORDS_UNUSED = "images.records_unused"  # input image records no document references
IMAGES_SOURCE = "images.source."  # + where the bytes came from (from_input, fetched, data_uri)
IMAGES_FROM_INPUT = IMAGES_SOURCE + "from_input"
IMAGES_FETCHED = IMAGES_SOURCE + "fetched"
IMAGES_DATA_URI = IMAGES_SOURCE + "data_uri"
IMAGES_FETCH = "images.fetch."  # + the fetcher's outcome ("ok", "timeout" ...)
IMAGES_FILTERED = "images.filtered."  # + hygiene reason, one per unique URL
IMAGES_FILTERED_REFS = "images.filtered_refs."  # + hygiene reason, one per reference
IMAGES_FAILED = "images.failed."  # + failure reason, one per unique URL
IMAGES_ENCODED = "images.encoded"
IMAGES_NEAR_DUPLICATE_URLS = "images.near_duplicate_urls"
IMAGES_PHASH_PIXEL_MISMATCH = "images.phash_pixel_mismatch"  # same hash group, not the same pixels: own codes
IMAGES_REFS_KEPT = "images.refs_kept"
IMAGES_REFS_REMOVED = "images.refs_removed"
IMAGES_REFS_OVER_DOC_CAP = "images.refs_over_doc_cap"

# ---------------------------------------------------------------- final documents, shards, errors

EMPTY_ELEMENTS_REMOVED = "final.empty_elements_removed"
WRITTEN = "written."  # + split: rows written (a Beam metric only)
ERROR = "error."  # + the plain function that raised on one element (beam_steps.stage_outputs)

# ---------------------------------------------------------------- cm3-data optout (its own summary)

OPTOUT_DOCUMENTS_READ = "optout.documents_read"
OPTOUT_DOCUMENTS_REMOVED = "optout.documents_removed"
OPTOUT_WITHOUT_IMAGE_URLS = "optout.documents_without_image_urls"
OPTOUT_EMPTY_ELEMENTS_REMOVED = "optout.empty_elements_removed"
OPTOUT_DOCUMENTS_TOUCHED = "optout.documents_touched"
OPTOUT_IMAGE_REFS_REMOVED = "optout.image_refs_removed"
