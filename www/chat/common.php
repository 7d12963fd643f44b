<?php
/*
 * What the chat demo's scripts (send.php, presence.php) share: JSON
 * answers, POST from this site's own pages only, form fields checked.
 */
declare(strict_types=1);

require __DIR__ . '/../comet.php';

header('Content-Type: application/json; charset=utf-8');
header('Cache-Control: no-store');
header('X-Content-Type-Options: nosniff');

function answer(int $status, array $body): void
{
    http_response_code($status);
    echo json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
    exit;
}

/* A POST from a page of this site, or an answer saying why not. */
function same_site_post(string $what): void
{
    if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
        header('Allow: POST');
        answer(405, ['error' => "POST a form with $what", 'status' => 405]);
    }
    // Browsers say where a request comes from: refuse posts made by other sites.
    $site = $_SERVER['HTTP_SEC_FETCH_SITE'] ?? 'same-origin';
    if ($site !== 'same-origin' && $site !== 'none') {
        answer(403, ['error' => 'cross-site posts are refused', 'status' => 403]);
    }
}

/* Form field $name: UTF-8 text, control characters made spaces, trimmed,
 * 1 to $max characters. */
function field(string $name, int $max): string
{
    $v = $_POST[$name] ?? '';
    if (!is_string($v) || !preg_match('//u', $v)) {
        answer(400, ['error' => "$name must be UTF-8 text", 'status' => 400]);
    }
    $v = trim(preg_replace('/[\x00-\x1F\x7F]+/u', ' ', $v));
    $len = preg_match_all('/./us', $v);
    if ($len < 1 || $len > $max) {
        answer(400, ['error' => "$name must be 1 to $max characters", 'status' => 400]);
    }
    return $v;
}
