"""Read a CSV file a spreadsheet saved: its records with the line each starts on, or an error naming the line.

Three commands read such files (``import``, overrides files, ``table import``), and the mistakes are the same
in all of them: a workbook or a UTF-16 "Unicode Text" file given as CSV, a file in the Windows code page, a
quote never closed, which swallows the rest of the file into one value, text after a closing quote, a NUL
character (UTF-16 without its byte-order mark, or a binary file), which csv keeps in the value.  Each
reader had its own copy, and the weakest one answered an unclosed quote with csv's "unexpected end of data".
Here every one of them is said once, with the line and the fix.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import DataError, UsageError
from .file_kinds import UTF16, kind_of_bytes

# csv's default limit (128 KB) rejects valid long notes; some limit must stay, or one
# unclosed quote would read a multi-GB file into a single value before failing.
FIELD_LIMIT = 64 * 1024 * 1024

SAVE_AS_CSV = "open it in Excel and save it with File > Save As > 'CSV UTF-8 (Comma delimited)', then use that file"
QUOTE_ADVICE = (
    "a '\"' that is part of a value must be doubled and the whole value quoted (\"12\"\" pipe\" is read as: 12\" pipe)"
)
CLOSE_QUOTE_ADVICE = "close the quote where the value ends; " + QUOTE_ADVICE

_SNIFF_BYTES = 16  # the longest signature
GBK = "gb18030"  # GBK and its superset, the code page Excel saves "CSV" in on Chinese Windows
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_OTHER_DELIMITERS = (";", "\t")


def checked_encoding(name: str | None) -> str | None:
    """``--encoding``'s value as Python's codec knows it (``gbk``, ``gb18030``, ``big5``, ``cp1252``...), or None."""
    if name is None:
        return None
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        raise UsageError(f"--encoding {name!r} is not an encoding Python knows",
                         hint="give gbk (Chinese Windows), big5, shift_jis, cp1252 (Western Windows), or leave it "
                              "out for UTF-8") from None


def csv_delimiter(header: str) -> str:
    """',' unless the header, outside quotes, has none but has ';' or tabs (then the more frequent).

    Only a header without any comma switches, so a comma-separated file is never misread.  Callers pass
    the first line that is not blank: blank lines before the header are skipped like any other.
    """
    names = _QUOTED.sub("", header)
    if "," in names:
        return ","
    counts = {delimiter: names.count(delimiter) for delimiter in _OTHER_DELIMITERS}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def show(raw: str) -> str:
    """A value quoted for a message, cut to 40 characters."""
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")


class CsvFile:
    """Streams (line number, fields) records of ``path``; can be read again (a check pass, then a write pass).

    A workbook, a database or UTF-16 text given as the CSV is refused before reading, named for what it is;
    ``hints``: the caller's own advice for such a kind of file (file_kinds' key -> hint), where its users
    give it by mistake for a reason of their own (a database, where ``--db`` was meant).
    """

    def __init__(self, path: Path, hints: Mapping[str, str] | None = None, encoding: str | None = None,
                 encoding_option: bool = False):
        self.path = path
        self.display = str(path)
        self.delimiter = ","
        self._hints = hints or {}
        self.encoding = encoding  # None: UTF-8 (with or without its byte-order mark), as every spreadsheet can save
        self._encoding_option = encoding_option  # the command reading it takes --encoding (import, table import):
        # only then is a file that reads as GBK shown so (the others have one fix, saving it as UTF-8)

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """Records with the physical line they start on; blank lines are skipped.

        ``strict`` makes csv report what it otherwise repairs by guessing: a quote never
        closed (which swallows the rest of the file into one value) and text after a
        closing quote.  csv's field size limit is process-wide, so it is restored after.
        """
        previous_limit = csv.field_size_limit(FIELD_LIMIT)
        try:
            lines = self._lines()
            head = list(_through_first_nonblank(lines))
            self.delimiter = csv_delimiter(head[-1] if head else "")
            reader = csv.reader(itertools.chain(head, lines), delimiter=self.delimiter, strict=True)
            end = 0
            header = None
            nul = self._holds_nul()  # one scan of the bytes spares every record the check
            try:
                for fields in reader:
                    start, end = end + 1, reader.line_num
                    if fields:
                        if nul and "\x00" in "".join(fields):
                            raise self._nul(start, fields, header)
                        header = header or fields
                        yield start, fields
            except csv.Error as exc:
                raise self._malformed(str(exc), end + 1, reader.line_num) from None
        finally:
            csv.field_size_limit(previous_limit)

    def _holds_nul(self) -> bool:
        """Whether the file has a NUL byte anywhere (in UTF-8, a NUL byte is only ever the NUL character)."""
        with self.path.open("rb") as handle:
            return any(b"\x00" in chunk for chunk in iter(lambda: handle.read(1 << 20), b""))

    def _nul(self, start: int, fields: list[str], header: list[str] | None) -> DataError:
        """A NUL character, which no text holds: Python's csv reads it as part of a value since 3.11, and the
        value went into the database (or the policy) as it was.  Named by its line and column.

        Mostly it is UTF-16 text without a byte-order mark (every other byte 0) or a binary file.
        """
        j = next(j for j, value in enumerate(fields) if "\x00" in value)
        value = fields[j]
        line = start + sum(len(_LINE_BREAK.findall(f)) for f in fields[:j]) + \
            len(_LINE_BREAK.findall(value[: value.index("\x00")]))
        name = f" ({header[j].strip()!r})" if header is not None and j < len(header) and header[j].strip() else ""
        text = "".join(fields)
        utf16 = text.count("\x00") * 4 >= len(text)  # 'a\0b\0' : every other character
        return DataError(
            f"{self.display}:{line}: column {j + 1}{name} holds a NUL character (byte 0x00): {show(value)}",
            hint=("the file looks like UTF-16 text without a byte-order mark; " + SAVE_AS_CSV) if utf16 else
                 ("no text holds a NUL: the file is probably not plain text (a binary export, or UTF-16 text); "
                  "delete the character, or " + SAVE_AS_CSV),
        )

    def changed(self, line: int | None = None) -> DataError:
        """The error for a file that no longer reads as it did (it was saved again while being read)."""
        where = f"{self.display}:{line}" if line else self.display
        return DataError(f"{where}: the file changed while it was being read; nothing was changed",
                         hint="read it again once it has been saved")

    def _malformed(self, reason: str, start: int, line: int) -> DataError:
        """Says what csv's terse reason (its only handle, stable for decades) means for this file.

        ``start`` is the first line of the record csv was reading, ``line`` the line it failed on.
        """
        if reason == "unexpected end of data":  # strict mode: the file ended inside a quoted value
            opened = self._unclosed_quote_line(start)
            return DataError(
                f"{self.display}:{opened}: unclosed quote starting here: {show(self._line(opened))};"
                f" the quoted value would run to the end of the file (line {line})",
                hint=CLOSE_QUOTE_ADVICE,
            )
        if reason.startswith("field larger than field limit"):
            return DataError(
                f"{self.display}:{start}: a value of the row starting here is longer than"
                f" {FIELD_LIMIT:,} characters (reading line {line}): most likely an unclosed quote",
                hint=CLOSE_QUOTE_ADVICE,
            )
        if reason.endswith("expected after '\"'"):
            return DataError(
                f"{self.display}:{line}: text after the closing quote of a quoted value: {show(self._line(line))}",
                hint=QUOTE_ADVICE,
            )
        return DataError(f"{self.display}:{line}: malformed CSV: {reason}", hint=QUOTE_ADVICE)

    def _unclosed_quote_line(self, start: int) -> int:
        """The line the never-closed quoted value opens on, for a record that starts on ``start``.

        A lenient reader reads that value to the end of the file; counting its line breaks
        back from the last line finds the opening quote even when earlier values of the
        same record span lines.
        """
        reader = csv.reader(itertools.islice(self._lines(), start - 1, None), delimiter=self.delimiter)
        value = next(reader, [""])[-1]
        last = start - 1 + reader.line_num
        ends_with_break = value.endswith(("\r", "\n"))
        return last - len(_LINE_BREAK.findall(value)) + ends_with_break

    def _line(self, number: int) -> str:
        """One physical line read again, to show it in an error message."""
        return next(itertools.islice(self._lines(), number - 1, None), "").rstrip("\r\n")

    def _lines(self) -> Iterator[str]:
        """The lines as csv needs them (newline=''): ending in LF, CRLF or a lone CR, as old Mac exports do."""
        with self.path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
            self._check_format(head)
            self._check_encoding(head)
            handle.seek(0)
            try:
                yield from io.TextIOWrapper(handle, encoding=self.encoding or "utf-8-sig", newline="")
            except UnicodeDecodeError:
                raise (self._not_utf8() if self.encoding is None else self._not_in(self.encoding)) from None

    def _check_encoding(self, head: bytes) -> None:
        """A file that starts with UTF-8's byte-order mark is UTF-8, whatever ``--encoding`` says: read as GBK
        (gb18030 reads almost any bytes) its header and names came out as mojibake, which the import stored."""
        if self.encoding is None or not head.startswith(codecs.BOM_UTF8) or self.encoding in ("utf-8", "utf-8-sig"):
            return
        raise UsageError(f"--encoding {self.encoding}: {self.display} starts with UTF-8's byte-order mark (EF BB BF), "
                         f"so it is UTF-8, not {self.encoding}",
                         hint="leave out --encoding: UTF-8 files, with or without the mark, are read without it")

    def _not_utf8(self) -> DataError:
        """Names the line and byte that are not UTF-8, found again in the raw bytes.

        The text reader decodes in blocks and cannot say which line a bad byte is on;
        reading the bytes line by line only happens for a file that has one.  A file that reads
        whole as GBK (what Excel saves as plain "CSV" on Chinese Windows) is shown as it reads
        so: the user, not a guess, decides whether it is (``--encoding gbk``).
        """
        error = self._first_undecodable("utf-8")
        if error is None:
            return self.changed()
        number, raw, exc = error
        hint = ("re-save the file as UTF-8 (in Excel: Save As > 'CSV UTF-8'); exports from"
                " Windows are often in its local code page (GBK in China, Windows-1252 in Europe)")
        if self._encoding_option and self._first_undecodable(GBK) is None:
            text = raw.decode(GBK).rstrip("\r\n")
            hint += f"; read as GBK, line {number} is {show(text)}: if that is right, import it with --encoding gbk"
        return DataError(f"{self.display}:{number}: not valid UTF-8"
                         f" (byte 0x{raw[exc.start]:02x} at position {exc.start + 1} of the line)", hint=hint)

    def _not_in(self, encoding: str) -> DataError:
        """The line and byte that ``--encoding`` cannot read."""
        error = self._first_undecodable(encoding)
        if error is None:
            return self.changed()
        number, raw, exc = error
        hint = "give the encoding the file was saved in, or leave out --encoding for UTF-8"
        if self._first_undecodable("utf-8") is None:  # the usual case: --encoding copied from another file's import
            hint = f"the file reads as UTF-8 (line {number} is {show(raw.decode('utf-8').rstrip(chr(13) + chr(10)))}): " \
                   f"leave out --encoding for UTF-8"
        return DataError(f"{self.display}:{number}: not valid {encoding}"
                         f" (byte 0x{raw[exc.start]:02x} at position {exc.start + 1} of the line)", hint=hint)

    def _first_undecodable(self, encoding: str) -> tuple[int, bytes, UnicodeDecodeError] | None:
        """(line number, its bytes, the error) of the first line ``encoding`` cannot read, or None."""
        with self.path.open("rb") as handle:
            raw_lines = itertools.chain.from_iterable(chunk.splitlines(keepends=True) for chunk in handle)
            for number, raw in enumerate(raw_lines, start=1):
                if number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    raw.decode(encoding)
                except UnicodeDecodeError as exc:
                    return number, raw, exc
        return None

    def _check_format(self, head: bytes) -> None:
        """Catch a workbook or database given as the CSV before its bytes read as a bad encoding."""
        kind = kind_of_bytes(head)  # the first bytes name only files that are no CSV
        if kind is not None:
            raise DataError(f"{self.display}: is {kind.what}, not {'UTF-8' if kind is UTF16 else 'a CSV file'}",
                            hint=self._hints.get(kind.key, kind.goes_to if kind.key == "sqlite" else SAVE_AS_CSV))


def _through_first_nonblank(lines: Iterator[str]) -> Iterator[str]:
    """The lines up to the header: blank lines before it are skipped like any blank line."""
    for line in lines:
        yield line
        if line.strip():
            return
