/** Every GraphQL operation the dashboard sends. */
import { gql } from '@apollo/client';

const ALARM_FIELDS = gql`
  fragment AlarmFields on Alarm {
    alarmId
    deviceId
    gateway
    condition
    priority
    state
    value
    limit
    raisedAt
    clearedAt
    updatedAt
  }
`;

const COMMAND_FIELDS = gql`
  fragment CommandFields on AlarmCommandState {
    commandId
    command
    patient
    gateway
    actor
    outcome
    error
    issuedAt
    deliveredAt
    appliedAt
  }
`;

const RISK_REPORT_FIELDS = gql`
  fragment RiskReportFields on RiskReport {
    score
    confidence
    level
    news2
    factors {
      name
      value
      contribution
      description
    }
    recommendations
    modelName
    modelVersion
    baseline
    widthS
    windowStart
    computedAt
    provisional
    trigger
  }
`;

export const PATIENTS = gql`
  ${ALARM_FIELDS}
  query Patients {
    patients {
      pseudonym
      site
      news2
      connected
      batteryPercent
      signalQuality
      afBurden
      rhythm
      riskTrend
      audioPaused
      vitals {
        name
        value
        time
        deviceId
      }
      risk {
        score
        level
        confidence
        provisional
        computedAt
      }
      activeAlarms {
        ...AlarmFields
      }
    }
  }
`;

export const ACKNOWLEDGE_ALARM = gql`
  ${COMMAND_FIELDS}
  mutation AcknowledgeAlarm($userId: ID!, $alarmId: ID!, $commandId: ID, $waitS: Float!) {
    acknowledgeAlarm(userId: $userId, alarmId: $alarmId, commandId: $commandId, waitS: $waitS) {
      ...CommandFields
    }
  }
`;

export const SILENCE_ALARM = gql`
  ${COMMAND_FIELDS}
  mutation SilenceAlarm($userId: ID!, $alarmId: ID, $durationS: Float!, $reason: String!, $commandId: ID, $waitS: Float!) {
    silenceAlarm(
      userId: $userId
      alarmId: $alarmId
      durationS: $durationS
      reason: $reason
      commandId: $commandId
      waitS: $waitS
    ) {
      ...CommandFields
    }
  }
`;

export const UNSILENCE_ALARM = gql`
  ${COMMAND_FIELDS}
  mutation UnsilenceAlarm($userId: ID!, $alarmId: ID, $commandId: ID, $waitS: Float!) {
    unsilenceAlarm(userId: $userId, alarmId: $alarmId, commandId: $commandId, waitS: $waitS) {
      ...CommandFields
    }
  }
`;

export const ALARM_COMMAND = gql`
  ${COMMAND_FIELDS}
  query AlarmCommand($commandId: ID!) {
    alarmCommand(commandId: $commandId) {
      ...CommandFields
    }
  }
`;

export const PATIENT_ALARMS = gql`
  ${ALARM_FIELDS}
  ${COMMAND_FIELDS}
  query PatientAlarms($userId: ID!) {
    alarms(userId: $userId, activeOnly: false) {
      ...AlarmFields
    }
    alarmActivity(userId: $userId, limit: 100) {
      alarmId
      commands {
        ...CommandFields
      }
      comments {
        alarmId
        author
        role
        text
        at
      }
      labels {
        alarmId
        author
        isTrue
        note
        at
      }
    }
  }
`;

export const COMMENT_ALARM = gql`
  mutation CommentAlarm($userId: ID!, $alarmId: ID!, $text: String!) {
    commentAlarm(userId: $userId, alarmId: $alarmId, text: $text) {
      alarmId
      author
      role
      text
      at
    }
  }
`;

export const LABEL_ALARM = gql`
  mutation LabelAlarm($userId: ID!, $alarmId: ID!, $isTrue: Boolean!, $note: String!) {
    labelAlarm(userId: $userId, alarmId: $alarmId, isTrue: $isTrue, note: $note) {
      alarmId
      author
      isTrue
      note
      at
    }
  }
`;

export const RISK_ASSESSMENT = gql`
  ${RISK_REPORT_FIELDS}
  query RiskAssessment($userId: ID!) {
    getRiskAssessment(userId: $userId) {
      ...RiskReportFields
    }
  }
`;

export const RISK_UPDATES = gql`
  ${RISK_REPORT_FIELDS}
  subscription RiskUpdates($userId: ID!) {
    realTimeRiskUpdate(userId: $userId) {
      userId
      score
      confidence
      level
      report {
        ...RiskReportFields
      }
    }
  }
`;

export const VITALS_HISTORY = gql`
  query VitalsHistory($userId: ID!, $widthS: Int!, $from: DateTime) {
    vitalsHistory(userId: $userId, widthS: $widthS, from: $from) {
      start
      end
      widthS
      hrMean
      hrMin
      hrMax
      spo2Mean
      spo2Min
      systolicMean
      diastolicMean
      afBurden
      completeness
    }
  }
`;

export const FLEET = gql`
  query Fleet {
    sites {
      siteId
      name
    }
    gateways {
      gatewayId
      site
      health
      softwareVersion
      modelVersions
      outboxRecords
      outboxBytes
      oldestUnsentAgeMs
      lastHeartbeat
      connectedDevices
    }
  }
`;

export const GATEWAY_TIMELINE = gql`
  query GatewayTimeline($gatewayId: ID!, $since: DateTime) {
    gatewayTimeline(gatewayId: $gatewayId, since: $since) {
      time
      kind
      summary
      detail
    }
  }
`;

export const MODELS = gql`
  query Models {
    models {
      name
      version
      task
      sha256
      metrics
      card
      createdAt
      aliases
    }
    sites {
      siteId
      name
    }
  }
`;

const ROLLOUT_SUMMARY_FIELDS = gql`
  fragment RolloutSummaryFields on Rollout {
    rolloutId
    model
    candidateVersion
    baselineVersion
    state
    stage
    stageSizes
    decision
    createdAt
    finishedAt
  }
`;

export const ROLLOUTS = gql`
  ${ROLLOUT_SUMMARY_FIELDS}
  query Rollouts {
    rollouts {
      ...RolloutSummaryFields
    }
  }
`;

export const ROLLOUT = gql`
  ${ROLLOUT_SUMMARY_FIELDS}
  query Rollout($rolloutId: ID!) {
    rollout(rolloutId: $rolloutId) {
      ...RolloutSummaryFields
      plan
      members {
        gatewayId
        stage
        status
        activeVersion
        alarmActive
        windows
        agreement
        shadowS
        candidateP99Ms
        liveP99Ms
        candidateAlarmRate
        liveAlarmRate
        candidateErrors
        loadFailures
        crashes
        refusalCode
        refusalDetail
        lastReportAt
      }
      history {
        at
        kind
        gatewayId
        actor
        detail
      }
    }
  }
`;

export const START_ROLLOUT = gql`
  ${ROLLOUT_SUMMARY_FIELDS}
  mutation StartRollout($model: String!, $version: String!, $plan: JSON!) {
    startRollout(model: $model, version: $version, plan: $plan) {
      ...RolloutSummaryFields
    }
  }
`;

const rolloutAction = (field: string) => gql`
  ${ROLLOUT_SUMMARY_FIELDS}
  mutation ${field[0]?.toUpperCase()}${field.slice(1)}($rolloutId: ID!, $reason: String!) {
    ${field}(rolloutId: $rolloutId, reason: $reason) {
      ...RolloutSummaryFields
    }
  }
`;

export const ROLLOUT_ACTIONS = {
  pause: rolloutAction('pauseRollout'),
  resume: rolloutAction('resumeRollout'),
  promote: rolloutAction('promoteRollout'),
  abort: rolloutAction('abortRollout'),
} as const;

export type RolloutAction = keyof typeof ROLLOUT_ACTIONS;
