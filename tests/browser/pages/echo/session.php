<?php
/*
 * What the Echo tests' pages share with Laravel's: a session (its own
 * directory next to the document root, which the test makes), a logged-in
 * user and a CSRF token in it, and the Pusher keys of the server the test
 * started (pusher.json next to the document root).
 */
declare(strict_types=1);

const USERS = [1 => 'Ann', 2 => 'Bob', 3 => 'Cy'];

function scratch(string $name): string
{
    return dirname($_SERVER['DOCUMENT_ROOT']) . '/' . $name;
}

session_save_path(scratch('sessions'));
session_start();

function pusher_keys(): array
{
    return json_decode(file_get_contents(scratch('pusher.json')), true);
}
