//! The endpoint suite every storage backend must pass, case by case.

use chrono::{Duration, Utc};
use collector::event::NewEvent;
use serde_json::{json, Value};

use super::{get, post, send, Fixture, MAX_BATCH, MAX_BODY};

/// Calls `$m!(case)` for every case, so each backend test file can list them all.
#[macro_export]
macro_rules! for_each_case {
    ($m:ident) => {
        $m!(post_single_event_answers_201_with_server_stamped_id_and_time);
        $m!(post_batch_stores_all_in_body_order);
        $m!(post_with_empty_source_is_refused_naming_the_field_and_stores_nothing);
        $m!(post_with_missing_action_is_refused_naming_the_field);
        $m!(batch_with_one_bad_event_stores_nothing);
        $m!(batch_over_max_batch_size_is_413);
        $m!(oversized_body_is_413);
        $m!(malformed_json_is_400);
        $m!(wrong_or_missing_content_type_is_415);
        $m!(empty_batch_and_non_object_bodies_are_400);
        $m!(client_supplied_time_or_id_is_refused);
        $m!(get_lists_newest_first);
        $m!(get_filters_by_source_and_action);
        $m!(get_filters_by_since_and_until);
        $m!(paging_follows_next_links_without_gaps_or_repeats);
        $m!(bad_query_parameters_are_400_naming_the_parameter);
        $m!(get_by_id_finds_the_event_and_404s_unknown_ids);
        $m!(retention_removes_only_expired_events);
        $m!(reopened_store_keeps_every_event);
        $m!(concurrent_posts_all_get_distinct_ids);
        $m!(readyz_and_healthz_answer_ok);
    };
}

async fn count(f: &Fixture) -> usize {
    let mut n = 0;
    let mut uri = "/events?limit=1000".to_string();
    loop {
        let r = get(&f.app, &uri).await;
        n += r.json["events"].as_array().unwrap().len();
        match r.json["next"].as_str() {
            Some(next) => uri = next.to_string(),
            None => return n,
        }
    }
}

fn assert_error(r: &super::Resp, status: u16, field: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.text);
    assert!(
        r.json["error"].is_string(),
        "error body must be JSON with an error message: {}",
        r.text
    );
    if let Some(field) = field {
        assert_eq!(r.json["field"], field, "body: {}", r.text);
    }
}

pub async fn post_single_event_answers_201_with_server_stamped_id_and_time(f: Fixture) {
    let before = Utc::now();
    let r = post(&f.app, r#"{"source":"qa-runner","action":"test.passed"}"#).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    assert_eq!(r.json["source"], "qa-runner");
    assert_eq!(r.json["action"], "test.passed");
    let id = r.json["id"].as_i64().expect("numeric id");
    let time = chrono::DateTime::parse_from_rfc3339(r.json["time"].as_str().unwrap()).unwrap();
    assert!(time >= before - Duration::seconds(1) && time <= Utc::now() + Duration::seconds(1));
    assert_eq!(r.headers["location"], format!("/events/{id}").as_str());
    let back = get(&f.app, &format!("/events/{id}")).await;
    assert_eq!(back.json, r.json, "what was answered is what is stored");
}

pub async fn post_batch_stores_all_in_body_order(f: Fixture) {
    let r = post(
        &f.app,
        r#"[{"source":"a","action":"1"},{"source":"b","action":"2"},{"source":"c","action":"3"}]"#,
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let stored = r.json.as_array().unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|e| e["source"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    let ids: Vec<i64> = stored.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase in body order: {ids:?}"
    );
    assert_eq!(count(&f).await, 3);
}

pub async fn post_with_empty_source_is_refused_naming_the_field_and_stores_nothing(f: Fixture) {
    assert_error(
        &post(&f.app, r#"{"source":"","action":"x"}"#).await,
        400,
        Some("source"),
    );
    assert_error(
        &post(&f.app, r#"{"source":"   ","action":"x"}"#).await,
        400,
        Some("source"),
    );
    assert_eq!(count(&f).await, 0);
}

pub async fn post_with_missing_action_is_refused_naming_the_field(f: Fixture) {
    assert_error(
        &post(&f.app, r#"{"source":"a"}"#).await,
        400,
        Some("action"),
    );
    assert_error(
        &post(&f.app, r#"{"source":"a","action":null}"#).await,
        400,
        Some("action"),
    );
    assert_error(
        &post(&f.app, r#"{"source":"a","action":7}"#).await,
        400,
        Some("action"),
    );
    assert_eq!(count(&f).await, 0);
}

pub async fn batch_with_one_bad_event_stores_nothing(f: Fixture) {
    let r = post(
        &f.app,
        r#"[{"source":"a","action":"1"},{"source":"b","action":""}]"#,
    )
    .await;
    assert_error(&r, 400, Some("[1].action"));
    assert_eq!(count(&f).await, 0);
}

pub async fn batch_over_max_batch_size_is_413(f: Fixture) {
    let batch: Vec<Value> = (0..=MAX_BATCH)
        .map(|i| json!({"source":"a","action":i.to_string()}))
        .collect();
    let r = post(&f.app, &Value::Array(batch).to_string()).await;
    assert_error(&r, 413, None);
    assert_eq!(count(&f).await, 0);
}

pub async fn oversized_body_is_413(f: Fixture) {
    let body = format!(
        r#"{{"source":"a","action":"{}"}}"#,
        "x".repeat(MAX_BODY + 1)
    );
    assert_error(&post(&f.app, &body).await, 413, None);
    assert_eq!(count(&f).await, 0);
}

pub async fn malformed_json_is_400(f: Fixture) {
    assert_error(&post(&f.app, r#"{"source":"a","#).await, 400, None);
    assert_error(&post(&f.app, "").await, 400, None);
    assert_eq!(count(&f).await, 0);
}

pub async fn wrong_or_missing_content_type_is_415(f: Fixture) {
    let body = r#"{"source":"a","action":"b"}"#;
    assert_error(
        &send(&f.app, "POST", "/events", Some("text/plain"), body).await,
        415,
        Some("content-type"),
    );
    assert_error(
        &send(&f.app, "POST", "/events", None, body).await,
        415,
        Some("content-type"),
    );
    let ok = send(
        &f.app,
        "POST",
        "/events",
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    assert_eq!(ok.status.as_u16(), 201);
    assert_eq!(count(&f).await, 1);
}

pub async fn empty_batch_and_non_object_bodies_are_400(f: Fixture) {
    assert_error(&post(&f.app, "[]").await, 400, None);
    assert_error(&post(&f.app, r#""hello""#).await, 400, Some("body"));
    assert_error(
        &post(&f.app, r#"[{"source":"a","action":"b"}, 3]"#).await,
        400,
        Some("[1]"),
    );
    assert_eq!(count(&f).await, 0);
}

pub async fn client_supplied_time_or_id_is_refused(f: Fixture) {
    assert_error(
        &post(
            &f.app,
            r#"{"source":"a","action":"b","time":"2020-01-01T00:00:00Z"}"#,
        )
        .await,
        400,
        Some("time"),
    );
    assert_error(
        &post(&f.app, r#"{"source":"a","action":"b","id":5}"#).await,
        400,
        Some("id"),
    );
    assert_eq!(count(&f).await, 0);
}

pub async fn get_lists_newest_first(f: Fixture) {
    for i in 0..3 {
        post(&f.app, &format!(r#"{{"source":"s","action":"{i}"}}"#)).await;
    }
    let r = get(&f.app, "/events").await;
    assert_eq!(r.status.as_u16(), 200);
    let actions: Vec<&str> = r.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["2", "1", "0"]);
    assert!(
        r.json["next"].is_null(),
        "no next link when everything fits"
    );
}

pub async fn get_filters_by_source_and_action(f: Fixture) {
    post(&f.app, r#"[{"source":"qa","action":"run"},{"source":"qa","action":"fail"},{"source":"deploy","action":"run"}]"#).await;
    let sources = |r: &super::Resp| -> Vec<(String, String)> {
        r.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["source"].as_str().unwrap().into(),
                    e["action"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let r = get(&f.app, "/events?source=qa").await;
    assert_eq!(
        sources(&r),
        [("qa".into(), "fail".into()), ("qa".into(), "run".into())]
    );
    let r = get(&f.app, "/events?action=run").await;
    assert_eq!(
        sources(&r),
        [("deploy".into(), "run".into()), ("qa".into(), "run".into())]
    );
    let r = get(&f.app, "/events?source=qa&action=run").await;
    assert_eq!(sources(&r), [("qa".to_string(), "run".to_string())]);
    assert_eq!(
        get(&f.app, "/events?source=nobody").await.json["events"],
        json!([])
    );
}

pub async fn get_filters_by_since_and_until(f: Fixture) {
    let now = Utc::now();
    let at = |d: i64, a: &str| NewEvent {
        source: "s".into(),
        action: a.into(),
        time: now - Duration::hours(d),
    };
    f.store
        .insert(vec![at(3, "old"), at(2, "mid"), at(1, "new")])
        .await
        .unwrap();
    let ts =
        |d: i64| (now - Duration::hours(d)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let actions = |r: super::Resp| -> Vec<String> {
        r.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    };
    // since is inclusive, until exclusive.
    let since = format!("/events?since={}", ts(2));
    assert_eq!(actions(get(&f.app, &since).await), ["new", "mid"]);
    let until = format!("/events?until={}", ts(2));
    assert_eq!(actions(get(&f.app, &until).await), ["old"]);
    let both = format!("/events?since={}&until={}", ts(3), ts(1));
    assert_eq!(actions(get(&f.app, &both).await), ["mid", "old"]);
}

pub async fn paging_follows_next_links_without_gaps_or_repeats(f: Fixture) {
    for chunk in 0..5 {
        let batch: Vec<Value> =
            (0..MAX_BATCH).map(|i| json!({"source": if i % 2 == 0 { "even" } else { "odd" }, "action": format!("{chunk}-{i}")})).collect();
        assert_eq!(
            post(&f.app, &Value::Array(batch).to_string())
                .await
                .status
                .as_u16(),
            201
        );
    }
    let mut seen = Vec::new();
    let mut uri = "/events?source=even&limit=4".to_string();
    let mut pages = 0;
    loop {
        let r = get(&f.app, &uri).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        let events = r.json["events"].as_array().unwrap();
        assert!(events.len() <= 4);
        seen.extend(events.iter().map(|e| e["id"].as_i64().unwrap()));
        pages += 1;
        match r.json["next"].as_str() {
            Some(next) => {
                assert!(
                    next.contains("source=even"),
                    "next link keeps the filters: {next}"
                );
                assert_eq!(
                    r.headers["link"].to_str().unwrap(),
                    format!("<{next}>; rel=\"next\"")
                );
                uri = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 15, "3 even events per batch of 5, 5 batches");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first, no repeats: {seen:?}"
    );
    assert_eq!(pages, 4);
}

pub async fn bad_query_parameters_are_400_naming_the_parameter(f: Fixture) {
    for (uri, field) in [
        ("/events?limit=0", "limit"),
        ("/events?limit=1001", "limit"),
        ("/events?limit=ten", "limit"),
        ("/events?since=yesterday", "since"),
        ("/events?until=2024-13-01T00:00:00Z", "until"),
        ("/events?cursor=abc", "cursor"),
        ("/events?source=", "source"),
        ("/events?colour=red", "colour"),
        ("/events?source=a&source=b", "source"),
    ] {
        assert_error(&get(&f.app, uri).await, 400, Some(field));
    }
}

pub async fn get_by_id_finds_the_event_and_404s_unknown_ids(f: Fixture) {
    let id = post(&f.app, r#"{"source":"a","action":"b"}"#).await.json["id"]
        .as_i64()
        .unwrap();
    let r = get(&f.app, &format!("/events/{id}")).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.json["source"], "a");
    assert_error(
        &get(&f.app, &format!("/events/{}", id + 1000)).await,
        404,
        None,
    );
    assert_error(&get(&f.app, "/events/abc").await, 400, Some("id"));
    assert_error(&get(&f.app, "/events/-1").await, 400, Some("id"));
}

pub async fn retention_removes_only_expired_events(f: Fixture) {
    let now = Utc::now();
    let at = |days: i64| NewEvent {
        source: "s".into(),
        action: format!("{days}d"),
        time: now - Duration::days(days),
    };
    f.store
        .insert(vec![at(40), at(31), at(29), at(0)])
        .await
        .unwrap();
    let deleted = f
        .store
        .delete_before(now - Duration::days(30))
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let r = get(&f.app, "/events").await;
    let actions: Vec<&str> = r.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["0d", "29d"]);
}

pub async fn reopened_store_keeps_every_event(f: Fixture) {
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            post(&f.app, &format!(r#"{{"source":"s","action":"{i}"}}"#))
                .await
                .json["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let Fixture {
        store,
        reopen,
        _keep,
        ..
    } = f;
    store.close().await;
    let reopened = reopen().await;
    let app = super::app_for(reopened.clone());
    for id in &ids {
        assert_eq!(
            get(&app, &format!("/events/{id}")).await.status.as_u16(),
            200,
            "event {id} lost"
        );
    }
    let next = post(&app, r#"{"source":"s","action":"after"}"#).await.json["id"]
        .as_i64()
        .unwrap();
    assert!(
        next > *ids.last().unwrap(),
        "ids keep increasing across restarts"
    );
    reopened.close().await;
    drop(_keep);
}

pub async fn concurrent_posts_all_get_distinct_ids(f: Fixture) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let app = f.app.clone();
            tokio::spawn(async move {
                post(&app, &format!(r#"{{"source":"c","action":"{i}"}}"#))
                    .await
                    .json["id"]
                    .as_i64()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().expect("id"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    assert_eq!(count(&f).await, 50);
}

pub async fn readyz_and_healthz_answer_ok(f: Fixture) {
    assert_eq!(get(&f.app, "/healthz").await.status.as_u16(), 200);
    let r = get(&f.app, "/readyz").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
}
