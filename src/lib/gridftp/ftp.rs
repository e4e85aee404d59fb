//! FTP reply texts (RFC 959 wording, as esmond-ps-load-gridftp reported them) for the
//! `failures` value of a transfer that did not end with 226.

/// The text for a reply code, or `None` for a code the table lacks (the original then
/// reported `"<code> None"`, and so do we, for identical archives).
pub fn reply_text(code: u32) -> Option<&'static str> {
    Some(match code {
        200 => "Command okay.",
        202 => "Command not implemented, superfluous at this site.",
        211 => "System status, or system help reply.",
        212 => "Directory status.",
        213 => "File status.",
        214 => "Help message.",
        215 => "NAME system type.",
        220 => "Service ready for new user.",
        221 => "Service closing control connection.",
        225 => "Data connection open; no transfer in progress.",
        226 => "Closing data connection.",
        227 => "Entering Passive Mode (h1,h2,h3,h4,p1,p2).",
        230 => "User logged in, proceed.",
        250 => "Requested file action okay, completed.",
        257 => "\"PATHNAME\" created.",
        331 => "User name okay, need password.",
        332 => "Need account for login.",
        350 => "Requested file action pending further information.",
        421 => "Service not available, closing control connection.",
        425 => "Cant open data connection.",
        426 => "Connection closed; transfer aborted.",
        450 => "Requested file action not taken.",
        451 => "Requested action aborted: local error in processing.",
        452 => "Requested action not taken.",
        500 => "Syntax error, command unrecognized.",
        501 => "Syntax error in parameters or arguments.",
        502 => "Command not implemented.",
        503 => "Bad sequence of commands.",
        504 => "Command not implemented for that parameter.",
        530 => "Not logged in.",
        532 => "Need account for storing files.",
        550 => "Requested action not taken.",
        551 => "Requested action aborted: page type unknown.",
        552 => "Requested file action aborted.",
        553 => "Requested action not taken.",
        _ => return None,
    })
}

/// The `failures` error text: `"<code> <text>"`.
pub fn failure_text(code: u32) -> String {
    format!("{code} {}", reply_text(code).unwrap_or("None"))
}
